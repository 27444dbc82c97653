//! The orders of one task that wait to be dialled, found in upload order, at a constant cost per order uploaded.
//!
//! An order waits for its first round from its upload until it is dialled, stopped or deleted, and waits for a
//! redial (roundRedial) after an unanswered first call. Uploads come by the million, so the first kind is not held
//! in a set: it is every order in state Waiting from a cursor on in the task's list of orders (before the cursor, no
//! order waits for its first round), plus a count. Only redials, which follow calls, are held in a set.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::orders::{OrderBook, OrderIdx, OrderState};

/// The waiting orders of one task. The caller reports every order that enters or leaves state Waiting.
#[derive(Debug, Default)]
pub(crate) struct Waiting {
    /// Position in the task's orders from which orders may wait for their first round; those before it never do
    /// again (dialled, stopped or deleted).
    fresh_from: usize,
    /// Orders waiting for a redial.
    redials: BTreeSet<OrderIdx>,
    /// Orders in state Waiting, of both kinds.
    count: usize,
}

impl Waiting {
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// An order was uploaded (appended to the task's orders).
    pub fn uploaded(&mut self) {
        self.count += 1;
    }

    /// Order `o` waits for a redial.
    pub fn redial(&mut self, o: OrderIdx) {
        if self.redials.insert(o) {
            self.count += 1;
        }
    }

    /// The order of the task, among `orders`, that a call should go to at `now`: the first one in upload order that
    /// is in state Waiting and not held back to later (`not_before`).
    pub fn next(
        &mut self,
        orders: &[OrderIdx],
        book: &OrderBook,
        now: DateTime<Utc>,
    ) -> Option<OrderIdx> {
        let due = |o: OrderIdx| {
            book.get(o)
                .is_some_and(|o| o.state == OrderState::Waiting && o.not_before <= now)
        };
        // Past orders that wait no more: each is passed once.
        while let Some(&o) = orders.get(self.fresh_from) {
            if book.get(o).is_some_and(|o| o.state == OrderState::Waiting) {
                break;
            }
            self.fresh_from += 1;
        }
        let fresh = orders.get(self.fresh_from).copied().filter(|&o| due(o));
        // The redials passed over are those still held back (`redial_after_secs` after their call ended).
        let redial = self.redials.iter().copied().find(|&o| due(o));
        match (fresh, redial) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Order `o`, at its place in `orders`, left state Waiting (dialled, stopped or deleted).
    pub fn left(&mut self, o: OrderIdx, orders: &[OrderIdx]) {
        if self.redials.remove(&o) {
            self.count -= 1;
            return;
        }
        if orders.get(self.fresh_from) == Some(&o) {
            self.fresh_from += 1;
        }
        self.count = self.count.saturating_sub(1);
    }

    /// Every order waiting for its first round, which all leave state Waiting; those waiting for a redial stay.
    pub fn take_fresh(&mut self, orders: &[OrderIdx], book: &OrderBook) -> Vec<OrderIdx> {
        let from = self.fresh_from.min(orders.len());
        let fresh: Vec<OrderIdx> = orders[from..]
            .iter()
            .copied()
            .filter(|&o| book.get(o).is_some_and(|o| o.state == OrderState::Waiting))
            .collect();
        self.fresh_from = orders.len();
        self.count = self.redials.len();
        fresh
    }

    /// Every waiting order, which all leave state Waiting.
    pub fn take_all(&mut self, orders: &[OrderIdx], book: &OrderBook) -> Vec<OrderIdx> {
        let mut all = self.take_fresh(orders, book);
        all.extend(std::mem::take(&mut self.redials));
        self.count = 0;
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::NewOrder;
    use chrono::Duration;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_772_438_400, 0).unwrap()
    }

    /// A book of `n` orders of one task, all waiting, and their list.
    fn book(n: u32) -> (OrderBook, Vec<OrderIdx>, Waiting) {
        let mut book = OrderBook::new();
        let mut w = Waiting::default();
        let ids = (0..n)
            .map(|i| {
                let id = format!("o-{i}");
                let o = book.push(NewOrder {
                    order_id: &id,
                    phone: "8613800138000",
                    user_name: "",
                    other: "",
                    params: None,
                    task: 0,
                    request: 0,
                    at: t0(),
                });
                w.uploaded();
                o.unwrap()
            })
            .collect();
        (book, ids, w)
    }

    fn set(book: &mut OrderBook, o: OrderIdx, state: OrderState) {
        book.get_mut(o).unwrap().state = state;
    }

    #[test]
    fn orders_are_found_in_upload_order_and_redials_only_when_due() {
        let (mut b, ids, mut w) = book(4);
        let now = t0();
        // Dial 0 and 1.
        for want in [0, 1] {
            assert_eq!(w.next(&ids, &b, now), Some(want));
            set(&mut b, want, OrderState::InCall);
            w.left(want, &ids);
        }
        // 0 ends unanswered and waits a minute for its redial: 2 goes first.
        let later = now + Duration::seconds(60);
        set(&mut b, 0, OrderState::Waiting);
        b.get_mut(0).unwrap().not_before = later;
        w.redial(0);
        assert_eq!(w.next(&ids, &b, now), Some(2));
        // Once due, the redial comes before later uploads.
        assert_eq!(w.next(&ids, &b, later), Some(0));
        // 2 is stopped: 3 is next after 0.
        set(&mut b, 2, OrderState::Stopped);
        w.left(2, &ids);
        set(&mut b, 0, OrderState::InCall);
        w.left(0, &ids);
        assert_eq!(w.next(&ids, &b, later), Some(3));
        assert!(!w.is_empty());
        set(&mut b, 3, OrderState::InCall);
        w.left(3, &ids);
        assert!(w.is_empty());
        assert_eq!(w.next(&ids, &b, later), None);
    }

    #[test]
    fn taking_fresh_orders_leaves_redials_and_taking_all_empties() {
        let (mut b, ids, mut w) = book(5);
        set(&mut b, 0, OrderState::InCall);
        w.left(0, &ids);
        set(&mut b, 0, OrderState::Waiting);
        w.redial(0);
        set(&mut b, 2, OrderState::Stopped);
        w.left(2, &ids);
        assert_eq!(w.take_fresh(&ids, &b), vec![1, 3, 4]);
        for o in [1, 3, 4] {
            set(&mut b, o, OrderState::Deleted);
        }
        assert!(!w.is_empty(), "the redial still waits");
        assert_eq!(w.take_all(&ids, &b), vec![0]);
        assert!(w.is_empty());
        assert_eq!(w.next(&ids, &b, t0()), None);
    }
}
