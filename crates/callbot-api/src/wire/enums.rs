//! Integer enumerations of the platform, each with an `Unknown(i64)` fallback so a new value never breaks parsing.
//!
//! They serialize as JSON integers and deserialize from an integer or from a string holding an integer
//! (the order callback sends `callbackType` as `"2"`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Reads an integer that may arrive as a JSON number or a string of digits.
pub(crate) fn int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = i64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an integer or a string holding an integer")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(E::custom)
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
            if v.fract() == 0.0 && v.abs() < 9.0e15 {
                Ok(v as i64)
            } else {
                Err(E::custom(format!("{v} is not a whole number")))
            }
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<i64, E> {
            v.trim()
                .parse()
                .map_err(|_| E::custom(format!("{v:?} is not an integer")))
        }
    }
    d.deserialize_any(V)
}

macro_rules! int_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $code:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this client does not know.
            Unknown(i64),
        }

        impl $name {
            /// The integer on the wire.
            pub fn code(self) -> i64 {
                match self {
                    $( $name::$variant => $code, )+
                    $name::Unknown(c) => c,
                }
            }

            /// The variant for an integer; unknown integers become `Unknown`.
            pub fn from_code(code: i64) -> Self {
                match code {
                    $( $code => $name::$variant, )+
                    c => $name::Unknown(c),
                }
            }
        }

        impl From<i64> for $name {
            fn from(code: i64) -> Self {
                Self::from_code(code)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_i64(self.code())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                int_or_string(d).map(Self::from_code)
            }
        }
    };
}

int_enum! {
    /// `taskStatus`.
    TaskStatus {
        /// 1: not started yet.
        Pending = 1,
        /// 2: in progress.
        Running = 2,
        /// 3: completed.
        Completed = 3,
        /// 4: ended (failed).
        Failed = 4,
        /// 5: paused.
        Paused = 5,
    }
}

impl TaskStatus {
    /// Completed or failed: the platform refuses further operations.
    pub fn is_finished(self) -> bool {
        matches!(self, TaskStatus::Completed | TaskStatus::Failed)
    }
}

int_enum! {
    /// `taskOperate` of mgrTaskStatus.
    TaskOperate {
        /// 1: start.
        Start = 1,
        /// 2: pause.
        Pause = 2,
        /// 3: complete (ends the task).
        Complete = 3,
    }
}

int_enum! {
    /// `delCall` of mgrTaskStatus and stopOrder.
    DelCall {
        /// 0: keep undialed numbers.
        Keep = 0,
        /// 1: delete undialed numbers (the vendor warns to use this with care).
        DeleteUndialed = 1,
    }
}

int_enum! {
    /// `startupType` of taskCreateSetting.
    StartupType {
        /// 1: started by mgrTaskStatus.
        Manual = 1,
        /// 2: starts by itself at `startupAt`.
        Scheduled = 2,
        /// 3: starts at once.
        Immediate = 3,
    }
}

int_enum! {
    /// `dispatchType` of manualCallSetting.
    DispatchType {
        /// 0: none.
        None = 0,
        /// 1: ratio-based dialing.
        Ratio = 1,
        /// 3: predictive dialing 2.0.
        Predictive = 3,
    }
}

int_enum! {
    /// `callStatus`. 1-5 are in flight; 6 and above are final; only 6 means answered.
    CallStatus {
        /// 1: preparing.
        Preparing = 1,
        /// 2: dispatching.
        Dispatching = 2,
        /// 3: dialing.
        Dialing = 3,
        /// 4: ringing.
        Ringing = 4,
        /// 5: in call.
        InCall = 5,
        /// 6: completed (answered).
        Answered = 6,
        /// 8: invalid number.
        InvalidNumber = 8,
        /// 9: temporarily unreachable.
        Unreachable = 9,
        /// 10: user busy.
        Busy = 10,
        /// 11: user busy and rejected.
        BusyRejected = 11,
        /// 12: user rejected.
        Rejected = 12,
        /// 13: user rejected (a second code with the same meaning).
        Rejected13 = 13,
        /// 15: TTS synthesis failed.
        TtsFailed = 15,
        /// 16: unknown reason.
        UnknownReason = 16,
        /// 17: blacklisted number.
        Blacklisted = 17,
        /// 18: terminated by the user.
        UserTerminated = 18,
        /// 21: invalid number (number check).
        InvalidNumberCheck = 21,
        /// 22: ring missed.
        RingMissed = 22,
        /// 23: no response.
        NoResponse = 23,
        /// 24: early media / voice mail.
        VoiceMail = 24,
        /// 25: rang too long.
        RingTooLong = 25,
    }
}

impl CallStatus {
    /// The call is over (code 6 or above).
    pub fn is_final(self) -> bool {
        self.code() >= 6
    }

    /// The call was answered (code 6).
    pub fn is_answered(self) -> bool {
        self.code() == 6
    }
}

int_enum! {
    /// `callbackType`.
    CallbackType {
        /// 1: task callback.
        Task = 1,
        /// 2: order callback.
        Order = 2,
        /// 3: call callback.
        Call = 3,
    }
}

impl CallbackType {
    /// Serializes as a JSON string (`"2"`), the way the order-callback page types the field.
    pub fn serialize_as_string<S: Serializer>(
        this: &CallbackType,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&this.code().to_string())
    }
}

int_enum! {
    /// `agentCallStatus` of the agent object.
    AgentCallStatus {
        /// 1: dialing.
        Dialing = 1,
        /// 2: ringing.
        Ringing = 2,
        /// 3: connected.
        Connected = 3,
        /// 4: completed.
        Completed = 4,
        /// 10: completed, agent busy.
        AgentBusy = 10,
        /// 12: completed, user rejected.
        UserRejected = 12,
    }
}

int_enum! {
    /// `manualHangupBy` of the agent object.
    ManualHangupBy {
        /// 0: none.
        None = 0,
        /// 1: the agent hung up.
        Agent = 1,
        /// 2: the user hung up.
        User = 2,
    }
}

int_enum! {
    /// `recordRole` of a transcript line.
    RecordRole {
        /// 0: the robot.
        Robot = 0,
        /// 1: the user.
        User = 1,
        /// 2: a human agent.
        Agent = 2,
    }
}

int_enum! {
    /// `recordType` of a transcript line.
    RecordType {
        /// 5: user timeout.
        UserTimeout = 5,
        /// 6: user interruption.
        UserInterruption = 6,
        /// 7: normal user answer.
        UserAnswer = 7,
        /// 8: server answer.
        ServerAnswer = 8,
        /// 18: agent reply.
        AgentReply = 18,
    }
}

int_enum! {
    /// SMS status values the listOrderDetail page lists (under the field name `smsSendTs`, which is also the send
    /// timestamp; see the crate README). Not attached to any field; offered for callers that decide the reading.
    SmsStatus {
        /// 0: not sent.
        NotSent = 0,
        /// 1: sent.
        Sent = 1,
        /// 2: delivered.
        Delivered = 2,
        /// 3: failed.
        Failed = 3,
        /// 4: clicked.
        Clicked = 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_round_trip() {
        let s: TaskStatus = serde_json::from_str("42").unwrap();
        assert_eq!(s, TaskStatus::Unknown(42));
        assert_eq!(serde_json::to_string(&s).unwrap(), "42");
        assert_eq!(TaskStatus::from_code(5), TaskStatus::Paused);
    }

    #[test]
    fn callback_type_accepts_string_or_number() {
        assert_eq!(
            serde_json::from_str::<CallbackType>("\"2\"").unwrap(),
            CallbackType::Order
        );
        assert_eq!(
            serde_json::from_str::<CallbackType>("3").unwrap(),
            CallbackType::Call
        );
        assert!(serde_json::from_str::<CallbackType>("\"x\"").is_err());
    }

    #[test]
    fn call_status_final_and_answered() {
        for c in 1..=5 {
            assert!(!CallStatus::from_code(c).is_final(), "{c}");
        }
        for c in [
            6, 8, 9, 10, 11, 12, 13, 15, 16, 17, 18, 21, 22, 23, 24, 25, 30,
        ] {
            assert!(CallStatus::from_code(c).is_final(), "{c}");
        }
        assert!(CallStatus::Answered.is_answered());
        assert!(!CallStatus::Busy.is_answered());
        // Every documented code maps to a named variant.
        for c in [
            1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 15, 16, 17, 18, 21, 22, 23, 24, 25,
        ] {
            assert!(
                !matches!(CallStatus::from_code(c), CallStatus::Unknown(_)),
                "{c}"
            );
            assert_eq!(CallStatus::from_code(c).code(), c);
        }
    }
}
