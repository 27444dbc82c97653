//! Strict reading of request bodies, with errors that name the field and carry the vendor's retCode.
//!
//! The simulator reads bodies the way a strict platform would: a missing required field is retCode 2, a field of the
//! wrong JSON type is retCode 3, a value out of range is retCode 4. Unknown fields are ignored.

use serde_json::{Map, Value};

/// A refused request: the retCode and a message that names the field and says what is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reject {
    pub code: i64,
    pub msg: String,
}

impl Reject {
    pub fn new(code: i64, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
        }
    }
    pub fn missing(field: &str) -> Self {
        Self::new(2, format!("missing parameter {field}"))
    }
    pub fn format(field: &str, expected: &str) -> Self {
        Self::new(
            3,
            format!("parameter {field} has the wrong format: expected {expected}"),
        )
    }
    pub fn value(msg: impl Into<String>) -> Self {
        Self::new(4, msg)
    }
}

/// A JSON object read with a path prefix for messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: &'a str,
}

impl<'a> Fields<'a> {
    pub fn root(v: &'a Value) -> Result<Self, Reject> {
        match v {
            Value::Object(map) => Ok(Self { map, prefix: "" }),
            _ => Err(Reject::format("body", "a JSON object")),
        }
    }

    /// An object that is itself the field `prefix` of a request (for messages).
    pub fn named(v: &'a Value, prefix: &'a str) -> Result<Self, Reject> {
        match v {
            Value::Object(map) => Ok(Self { map, prefix }),
            _ => Err(Reject::format(prefix, "an object")),
        }
    }

    pub fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// `name`, or the first of `aliases` that is present.
    fn get_any(&self, names: &[&str]) -> Option<&'a Value> {
        names.iter().find_map(|n| self.get(n))
    }

    pub fn str(&self, name: &str) -> Result<&'a str, Reject> {
        self.opt_str(name)?
            .ok_or_else(|| Reject::missing(&self.path(name)))
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<&'a str>, Reject> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Reject::format(&self.path(name), "a string")),
        }
    }

    pub fn i64(&self, name: &str) -> Result<i64, Reject> {
        self.opt_i64(name)?
            .ok_or_else(|| Reject::missing(&self.path(name)))
    }

    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>, Reject> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| Reject::format(&self.path(name), "an integer")),
            Some(_) => Err(Reject::format(&self.path(name), "an integer")),
        }
    }

    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, Reject> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Reject::format(&self.path(name), "true or false")),
        }
    }

    pub fn obj(&self, name: &'a str) -> Result<Fields<'a>, Reject> {
        self.opt_obj(name)?
            .ok_or_else(|| Reject::missing(&self.path(name)))
    }

    pub fn opt_obj(&self, name: &'a str) -> Result<Option<Fields<'a>>, Reject> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Fields { map, prefix: name })),
            Some(_) => Err(Reject::format(&self.path(name), "an object")),
        }
    }

    pub fn arr(&self, name: &str) -> Result<&'a Vec<Value>, Reject> {
        self.opt_arr(&[name])?
            .ok_or_else(|| Reject::missing(&self.path(name)))
    }

    /// An optional array, under `names[0]` or one of its aliases.
    pub fn opt_arr(&self, names: &[&str]) -> Result<Option<&'a Vec<Value>>, Reject> {
        match self.get_any(names) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(Reject::format(&self.path(names[0]), "an array")),
        }
    }

    /// An array of strings.
    pub fn strings(&self, name: &str) -> Result<Vec<&'a str>, Reject> {
        self.arr(name)?
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| Reject::format(&self.path(name), "an array of strings"))
            })
            .collect()
    }

    /// The raw object, for inspection.
    pub fn raw(&self) -> Value {
        Value::Object(self.map.clone())
    }
}

/// Checks the constant `productID`.
pub(crate) fn product_id(body: &Fields<'_>) -> Result<(), Reject> {
    let product = body.str("productID")?;
    if product == "callbot" {
        Ok(())
    } else {
        Err(Reject::value(format!(
            "productID must be \"callbot\", got {product:?}"
        )))
    }
}

/// The vendor's phone rule: country code + national number, digits only, no `+`, no leading 0.
/// The simulator reads it as 7 to 15 digits (E.164 length) not starting with 0.
pub(crate) fn check_phone(phone: &str) -> Result<(), String> {
    let digits_only = !phone.is_empty() && phone.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || !(7..=15).contains(&phone.len()) || phone.starts_with('0') {
        return Err(format!(
            "userPhone {phone:?} is not country code + number: use 7-15 digits, no '+', no spaces, no leading 0 \
             (e.g. 8613800138000)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_wrong_type_and_value_errors_carry_vendor_codes_and_paths() {
        let v = json!({"productID": "callbot", "a": {"n": "x"}, "m": null});
        let f = Fields::root(&v).unwrap();
        assert!(product_id(&f).is_ok());
        let a = f.obj("a").unwrap();
        let e = a.i64("n").unwrap_err();
        assert_eq!((e.code, e.msg.contains("a.n")), (3, true));
        let e = f.str("m").unwrap_err();
        assert_eq!(e.code, 2);
        let bad = json!({"productID": "callbotx"});
        assert_eq!(
            product_id(&Fields::root(&bad).unwrap()).unwrap_err().code,
            4
        );
    }

    #[test]
    fn phone_rule_accepts_country_code_digits_only() {
        assert!(check_phone("8613800138000").is_ok());
        assert!(check_phone("4915112345678").is_ok());
        for bad in [
            "+8613800138000",
            "013800138000",
            "86 138 0013 8000",
            "123456",
            "1234567890123456",
            "",
        ] {
            assert!(check_phone(bad).is_err(), "{bad}");
        }
    }
}
