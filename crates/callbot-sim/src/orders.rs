//! The orders the simulator holds, compactly, and the index that finds one by `orderID`.
//!
//! One simulator must be able to hold millions of orders (ten million in under 5 GB), so an order keeps what the engine
//! acts on in small fixed-size fields, and its text (orderID, userPhone, userName, other, and `params` as compact JSON)
//! is appended to one buffer shared by every order: no allocation per order, no spare capacity, no
//! `serde_json::Value` tree, and no small long-lived allocations between the short-lived ones of each request (which
//! fragment the allocator's heap and make it slower as it fills). What an order shares with the others of its request
//! (the time, the requestID, the callback URLs) is kept once in the request log (`crate::requests`); the order keeps
//! the request's index. The index by `orderID` keeps no second copy of the ID.

use std::collections::HashMap;
use std::collections::hash_map::{Entry, RandomState};
use std::fmt::Write as _;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::num::NonZeroU32;
use std::ops::Deref;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// Where an order is in [`OrderBook`]: orders are numbered in the order they were accepted, from 0.
pub(crate) type OrderIdx = u32;

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Waiting to be dialled (first round or a redial).
    Waiting,
    /// A call is in progress.
    InCall,
    /// No more rounds follow.
    Finished,
    /// Stopped by stopOrder or by completing the task; never dialled again.
    Stopped,
    /// Deleted undialled (`delCall=1`); hidden from listOrderDetail, its orderID stays used.
    Deleted,
}

/// What a new order is made of.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewOrder<'a> {
    pub order_id: &'a str,
    pub phone: &'a str,
    pub user_name: &'a str,
    pub other: &'a str,
    /// `params` as sent; `None` when the item had none (read back as `[]`).
    pub params: Option<&'a Value>,
    /// The task's index in the engine (creation order).
    pub task: u32,
    /// The request that brought it, in the request log.
    pub request: u32,
    /// When it was accepted: it may be dialled from then on.
    pub at: DateTime<Utc>,
}

/// One accepted order, without its text (which [`OrderRef`] adds).
#[derive(Debug)]
pub(crate) struct Order {
    /// Where its text starts in the book's buffer.
    start: usize,
    /// Where each of orderID, userPhone, userName and other ends, from `start`; params runs from the last to the
    /// next order's `start` (or the end of the buffer).
    ends: [u32; 4],
    /// The task's index in the engine (creation order).
    pub task: u32,
    /// The request that brought it, in the request log.
    pub request: u32,
    pub calls: OrderCalls,
    pub state: OrderState,
    /// Earliest dial time while Waiting.
    pub not_before: DateTime<Utc>,
    /// stopOrder arrived while a call was in progress: no redial follows.
    pub stop_requested: bool,
}

impl Order {
    /// Whether no more rounds follow (the `finish` flag of lists and callbacks).
    pub fn finish(&self) -> bool {
        matches!(
            self.state,
            OrderState::Finished | OrderState::Stopped | OrderState::Deleted
        )
    }
}

/// An order with its text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OrderRef<'a> {
    order: &'a Order,
    /// This order's part of the book's buffer.
    text: &'a str,
}

impl<'a> OrderRef<'a> {
    fn part(&self, i: usize) -> &'a str {
        let start = if i == 0 {
            0
        } else {
            self.order.ends[i - 1] as usize
        };
        let end = self
            .order
            .ends
            .get(i)
            .map_or(self.text.len(), |&e| e as usize);
        self.text.get(start..end).unwrap_or_default()
    }

    pub fn order_id(&self) -> &'a str {
        self.part(0)
    }

    pub fn phone(&self) -> &'a str {
        self.part(1)
    }

    pub fn user_name(&self) -> &'a str {
        self.part(2)
    }

    pub fn other(&self) -> &'a str {
        self.part(3)
    }

    /// `params` as it was sent (`[]` if it was not).
    pub fn params(&self) -> Value {
        serde_json::from_str(self.part(4)).unwrap_or_else(|_| Value::Array(Vec::new()))
    }
}

impl Deref for OrderRef<'_> {
    type Target = Order;

    fn deref(&self) -> &Order {
        self.order
    }
}

/// The calls of an order, as indices into the call log. There are at most two: the first round, and one roundRedial
/// redial (the engine redials only a first-round call).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OrderCalls([Option<NonZeroU32>; 2]);

impl OrderCalls {
    /// Adds call `idx` and returns its round (1 or 2); `None`, and nothing added, when the order already has its two
    /// calls or `idx` does not fit in 32 bits.
    pub fn push(&mut self, idx: usize) -> Option<u32> {
        let id = u32::try_from(idx)
            .ok()
            .and_then(|i| i.checked_add(1))
            .and_then(NonZeroU32::new)?;
        let free = self.0.iter().position(Option::is_none)?;
        self.0[free] = Some(id);
        u32::try_from(free + 1).ok()
    }

    /// Call-log indices, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().flatten().map(|i| (i.get() - 1) as usize)
    }

    pub fn len(&self) -> usize {
        self.0.iter().flatten().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0[0].is_none()
    }

    pub fn last(&self) -> Option<usize> {
        self.iter().last()
    }
}

/// Every accepted order, in acceptance order, with its text and the index by `orderID`. Orders are never removed (a
/// deleted order's ID stays used).
#[derive(Debug)]
pub(crate) struct OrderBook<S = RandomState> {
    orders: Vec<Order>,
    /// The text of every order, one after another.
    text: String,
    index: IdIndex<S>,
}

impl OrderBook {
    pub fn new() -> Self {
        Self::with_hasher(RandomState::new())
    }
}

impl<S: BuildHasher> OrderBook<S> {
    /// A book whose index hashes orderIDs with `hasher` (tests use a colliding one).
    pub fn with_hasher(hasher: S) -> Self {
        Self {
            orders: Vec::new(),
            text: String::new(),
            index: IdIndex {
                hasher,
                by_hash: HashMap::default(),
                collided: HashMap::new(),
            },
        }
    }

    /// How many orders were accepted.
    pub fn len(&self) -> usize {
        self.orders.len()
    }

    pub fn get(&self, i: OrderIdx) -> Option<OrderRef<'_>> {
        let i = i as usize;
        let order = self.orders.get(i)?;
        let end = self.orders.get(i + 1).map_or(self.text.len(), |o| o.start);
        let text = self.text.get(order.start..end)?;
        Some(OrderRef { order, text })
    }

    /// The order, to change its state (its text never changes).
    pub fn get_mut(&mut self, i: OrderIdx) -> Option<&mut Order> {
        self.orders.get_mut(i as usize)
    }

    /// The order with this orderID.
    pub fn find(&self, order_id: &str) -> Option<OrderIdx> {
        let h = self.index.hasher.hash_one(order_id);
        if let Some(&i) = self.index.by_hash.get(&h)
            && self.get(i).is_some_and(|o| o.order_id() == order_id)
        {
            return Some(i);
        }
        if self.index.collided.is_empty() {
            return None;
        }
        self.index.collided.get(order_id).copied()
    }

    /// Adds an order, waiting from `new.at`, whose ID is not held yet (the caller checked with
    /// [`OrderBook::find`]). `None`, and nothing added, once 2^32 orders are held or if its text is over 4 GiB.
    pub fn push(&mut self, new: NewOrder<'_>) -> Option<OrderIdx> {
        let i = OrderIdx::try_from(self.orders.len()).ok()?;
        let start = self.text.len();
        let mut ends = [0u32; 4];
        for (end, part) in ends
            .iter_mut()
            .zip([new.order_id, new.phone, new.user_name, new.other])
        {
            self.text.push_str(part);
            *end = u32::try_from(self.text.len() - start).unwrap_or(u32::MAX);
        }
        match new.params {
            // `Value`'s Display is its compact JSON, which reads back to an equal value.
            Some(params) => {
                let _ = write!(self.text, "{params}");
            }
            None => self.text.push_str("[]"),
        }
        if u32::try_from(self.text.len() - start).is_err() {
            self.text.truncate(start);
            return None;
        }
        let h = self.index.hasher.hash_one(new.order_id);
        match self.index.by_hash.entry(h) {
            Entry::Vacant(slot) => {
                slot.insert(i);
            }
            Entry::Occupied(_) => {
                self.index.collided.insert(new.order_id.into(), i);
            }
        }
        self.orders.push(Order {
            start,
            ends,
            task: new.task,
            request: new.request,
            calls: OrderCalls::default(),
            state: OrderState::Waiting,
            not_before: new.at,
            stop_requested: false,
        });
        Some(i)
    }
}

/// orderID → order without a second copy of each ID: keyed by the ID's 64-bit hash (keyed SipHash by default, so a
/// client cannot aim for collisions), checked against the order's own ID. An ID whose hash an earlier ID already
/// holds (about one in 2^64 / n) goes to `collided`, keyed by its text.
#[derive(Debug)]
struct IdIndex<S> {
    hasher: S,
    by_hash: HashMap<u64, OrderIdx, BuildHasherDefault<Prehashed>>,
    collided: HashMap<Box<str>, OrderIdx>,
}

/// The hasher of `by_hash`, whose keys are hashes already: it passes a `u64` through.
#[derive(Debug, Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; this keeps any other key well spread all the same.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_772_438_400, 0).unwrap()
    }

    fn new<'a>(id: &'a str, params: Option<&'a Value>) -> NewOrder<'a> {
        NewOrder {
            order_id: id,
            phone: "8613800138000",
            user_name: "Ann",
            other: "ref-1",
            params,
            task: 0,
            request: 0,
            at: t0(),
        }
    }

    /// Every ID hashes to 0: every ID after the first collides.
    #[derive(Debug, Default)]
    struct Zero;

    impl Hasher for Zero {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, _: &[u8]) {}
    }

    #[test]
    fn order_text_reads_back_each_field_and_params_as_sent() {
        let params = json!([{"name": "amount", "value": "10.00"}, {"name": "n", "value": 1.5}]);
        let mut book = OrderBook::new();
        let empty = NewOrder {
            order_id: "",
            phone: "",
            user_name: "",
            other: "",
            ..new("", None)
        };
        let ids = [
            book.push(new("o-1", Some(&params))),
            book.push(new("o-2", None)),
            book.push(empty),
            book.push(new("o-3", Some(&Value::Null))),
        ]
        .map(Option::unwrap);
        let o = book.get(ids[0]).unwrap();
        assert_eq!(
            (o.order_id(), o.phone(), o.user_name(), o.other()),
            ("o-1", "8613800138000", "Ann", "ref-1")
        );
        assert_eq!(o.params(), params);
        assert_eq!(book.get(ids[1]).unwrap().params(), json!([]));
        let e = book.get(ids[2]).unwrap();
        assert_eq!((e.order_id(), e.other(), e.params()), ("", "", json!([])));
        assert_eq!(book.get(ids[3]).unwrap().params(), Value::Null);
        assert_eq!(book.get(ids[3]).unwrap().order_id(), "o-3");
        assert!(book.get(4).is_none());
    }

    #[test]
    fn an_order_stays_small() {
        // Ten million orders in under 5 GB leaves 500 bytes each for the order, its text and its share of the
        // indexes; the fixed part is an eighth of that at most.
        assert!(size_of::<Order>() <= 56, "{}", size_of::<Order>());
        let mut book = OrderBook::new();
        book.push(new("0b0c0d0e-1111-5222-8333-444455556666", None));
        assert_eq!(book.text.len(), 36 + 13 + 3 + 5 + 2, "only the text itself");
    }

    #[test]
    fn an_order_takes_two_calls_at_most() {
        let mut c = OrderCalls::default();
        assert!(c.is_empty());
        assert_eq!(c.push(0), Some(1));
        assert_eq!(c.push(7), Some(2));
        assert_eq!(c.push(9), None, "a third call is refused");
        assert_eq!(c.iter().collect::<Vec<_>>(), vec![0, 7]);
        assert_eq!((c.len(), c.last()), (2, Some(7)));
        assert_eq!(OrderCalls::default().push(u32::MAX as usize), None);
    }

    #[test]
    fn finds_orders_by_id_and_nothing_else() {
        let mut book = OrderBook::new();
        for i in 0..1000 {
            assert_eq!(book.push(new(&format!("o-{i}"), None)), Some(i));
        }
        assert_eq!(book.find("o-0"), Some(0));
        assert_eq!(book.find("o-999"), Some(999));
        assert_eq!(book.find("o-1000"), None);
        assert_eq!(book.find(""), None);
        assert_eq!(book.len(), 1000);
    }

    #[test]
    fn ids_whose_hashes_collide_are_still_told_apart() {
        let mut book = OrderBook::with_hasher(BuildHasherDefault::<Zero>::default());
        for i in 0..50 {
            assert_eq!(book.push(new(&format!("o-{i}"), None)), Some(i));
        }
        for i in 0..50 {
            assert_eq!(book.find(&format!("o-{i}")), Some(i), "o-{i}");
        }
        assert_eq!(book.find("o-50"), None);
        assert_eq!(book.get(49).map(|o| o.order_id()), Some("o-49"));
    }
}
