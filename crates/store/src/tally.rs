//! Changes to the per-task order tallies gathered during one transaction. Pure; each backend writes them with its
//! own SQL just before the transaction commits.

use std::collections::BTreeMap;

use crate::UploadState;

/// Per task, the change of each upload state's count, in [`UploadState::ALL`] order.
#[derive(Debug, Default)]
pub struct TallyDelta(BTreeMap<String, [i64; 4]>);

impl TallyDelta {
    /// `n` orders of the task entered (`n > 0`) or left (`n < 0`) `state`.
    pub fn add(&mut self, user_task_id: &str, state: UploadState, n: i64) {
        if n == 0 {
            return;
        }
        let i = UploadState::ALL
            .iter()
            .position(|s| *s == state)
            .unwrap_or(0);
        match self.0.get_mut(user_task_id) {
            Some(d) => d[i] += n,
            None => {
                let mut d = [0; 4];
                d[i] = n;
                self.0.insert(user_task_id.to_owned(), d);
            }
        }
    }

    /// `n` orders of the task moved from `from` to `to`.
    pub fn moved(&mut self, user_task_id: &str, from: UploadState, to: UploadState, n: i64) {
        self.add(user_task_id, from, -n);
        self.add(user_task_id, to, n);
    }

    /// The tasks whose counts changed, in key order (so concurrent writers lock their rows in the same order).
    pub fn into_changes(self) -> Vec<(String, [i64; 4])> {
        self.0.into_iter().filter(|(_, d)| *d != [0; 4]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_net_out_and_untouched_tasks_are_left_out() {
        let mut d = TallyDelta::default();
        d.add("b", UploadState::Planned, 3);
        d.moved("b", UploadState::Planned, UploadState::Sending, 2);
        d.moved("a", UploadState::Sending, UploadState::Sent, 1);
        d.moved("c", UploadState::Sent, UploadState::Sent, 5);
        d.add("c", UploadState::Rejected, 0);
        assert_eq!(
            d.into_changes(),
            vec![
                ("a".to_owned(), [0, -1, 1, 0]),
                ("b".to_owned(), [1, 2, 0, 0])
            ]
        );
    }
}
