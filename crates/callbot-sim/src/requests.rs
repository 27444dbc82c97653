//! The log of the requests that carried orders (createAndCall, createTask, addBatchCall), accepted or not.
//!
//! What every order of a request shares (the time, the requestID, the endpoint, the account, the userTaskID and the
//! callback URLs) is kept once here, with the strings repeated across requests interned. A request's accepted orders
//! are consecutive in the [`OrderBook`], so the log keeps only their first index and count, and a copy of the items it
//! refused. The public [`Submission`] values are built only when [`RequestLog::submissions`] is called.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::orders::{OrderBook, OrderIdx};

/// Where a request is in the [`RequestLog`].
pub(crate) type RequestIdx = u32;

/// One order submitted as new in a createAndCall/addBatchCall/createTask request, accepted or not.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Submission {
    pub at: DateTime<Utc>,
    pub request_id: String,
    pub endpoint: &'static str,
    pub account: String,
    pub user_task_id: String,
    pub order_id: String,
    pub phone: String,
    pub accepted: bool,
    pub error: Option<String>,
}

/// What a request says about itself, before its items.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestInfo<'a> {
    pub at: DateTime<Utc>,
    pub request_id: &'a str,
    pub endpoint: &'static str,
    pub account: &'a str,
    pub user_task_id: &'a str,
    pub order_callback_url: &'a str,
    pub call_callback_url: &'a str,
}

/// One logged request.
#[derive(Debug)]
pub(crate) struct Request {
    pub at: DateTime<Utc>,
    pub request_id: Box<str>,
    pub order_callback_url: Arc<str>,
    pub call_callback_url: Arc<str>,
    endpoint: &'static str,
    account: Arc<str>,
    user_task_id: Arc<str>,
    /// Items logged so far, accepted or not, in callList order.
    items: u32,
    /// The accepted items are the orders `first_order..first_order + accepted`.
    first_order: OrderIdx,
    accepted: u32,
    /// The items not accepted, in callList order.
    refused: Vec<Refused>,
}

/// An item that did not become an order.
#[derive(Debug)]
struct Refused {
    /// Its place in the callList.
    item: u32,
    order_id: Box<str>,
    phone: Box<str>,
    /// Shared by every item of a request rejected whole.
    error: Arc<str>,
}

/// Every request that carried items, in arrival order.
#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    requests: Vec<Request>,
    /// Accounts, userTaskIDs and callback URLs, one copy each.
    strings: HashSet<Arc<str>>,
}

impl RequestLog {
    /// Logs a request whose accepted items will be the orders from `next_order` on; its items follow, in callList
    /// order, with [`RequestLog::accept`] and [`RequestLog::refuse`]. `None` once 2^32 requests are logged.
    pub fn open(&mut self, info: RequestInfo<'_>, next_order: usize) -> Option<RequestIdx> {
        let idx = RequestIdx::try_from(self.requests.len()).ok()?;
        let first_order = OrderIdx::try_from(next_order).ok()?;
        let request = Request {
            at: info.at,
            request_id: info.request_id.into(),
            order_callback_url: self.intern(info.order_callback_url),
            call_callback_url: self.intern(info.call_callback_url),
            endpoint: info.endpoint,
            account: self.intern(info.account),
            user_task_id: self.intern(info.user_task_id),
            items: 0,
            first_order,
            accepted: 0,
            refused: Vec::new(),
        };
        self.requests.push(request);
        Some(idx)
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(held) = self.strings.get(s) {
            return held.clone();
        }
        let new: Arc<str> = s.into();
        self.strings.insert(new.clone());
        new
    }

    pub fn get(&self, r: RequestIdx) -> Option<&Request> {
        self.requests.get(r as usize)
    }

    /// The next item of request `r` became order `order`, which must be the request's next one.
    pub fn accept(&mut self, r: RequestIdx, order: OrderIdx) {
        if let Some(req) = self.requests.get_mut(r as usize) {
            debug_assert_eq!(
                order,
                req.first_order + req.accepted,
                "a request's orders are consecutive"
            );
            req.items += 1;
            req.accepted += 1;
        }
    }

    /// The next item of request `r` was not imported.
    pub fn refuse(&mut self, r: RequestIdx, order_id: &str, phone: &str, error: Arc<str>) {
        if let Some(req) = self.requests.get_mut(r as usize) {
            req.refused.push(Refused {
                item: req.items,
                order_id: order_id.into(),
                phone: phone.into(),
                error,
            });
            req.items += 1;
        }
    }

    /// Every item logged, in arrival order, as public values.
    pub fn submissions(&self, orders: &OrderBook) -> Vec<Submission> {
        let total: usize = self.requests.iter().map(|r| r.items as usize).sum();
        let mut out = Vec::with_capacity(total);
        for r in &self.requests {
            let mut refused = r.refused.iter().peekable();
            let mut accepted =
                (r.first_order..r.first_order + r.accepted).filter_map(|i| orders.get(i));
            for item in 0..r.items {
                let (order_id, phone, error) = match refused.next_if(|x| x.item == item) {
                    Some(x) => (&*x.order_id, &*x.phone, Some(x.error.to_string())),
                    None => match accepted.next() {
                        Some(o) => (o.order_id(), o.phone(), None),
                        None => break,
                    },
                };
                out.push(Submission {
                    at: r.at,
                    request_id: r.request_id.to_string(),
                    endpoint: r.endpoint,
                    account: r.account.to_string(),
                    user_task_id: r.user_task_id.to_string(),
                    order_id: order_id.to_owned(),
                    phone: phone.to_owned(),
                    accepted: error.is_none(),
                    error,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::NewOrder;

    fn info(request_id: &'static str, ut: &'static str) -> RequestInfo<'static> {
        RequestInfo {
            at: DateTime::from_timestamp(1_772_438_400, 0).unwrap(),
            request_id,
            endpoint: "addBatchCall",
            account: "acct",
            user_task_id: ut,
            order_callback_url: "http://cb/order",
            call_callback_url: "",
        }
    }

    fn accept(log: &mut RequestLog, book: &mut OrderBook, r: RequestIdx, id: &str) {
        let o = book
            .push(NewOrder {
                order_id: id,
                phone: "8613800138000",
                user_name: "",
                other: "",
                params: None,
                task: 0,
                request: r,
                at: info("", "").at,
            })
            .unwrap();
        log.accept(r, o);
    }

    #[test]
    fn submissions_interleave_accepted_and_refused_items_in_call_list_order() {
        let (mut log, mut book) = (RequestLog::default(), OrderBook::new());
        let r1 = log.open(info("r1", "t1"), book.len()).unwrap();
        log.refuse(r1, "bad", "0123", "bad phone".into());
        accept(&mut log, &mut book, r1, "a");
        log.refuse(r1, "a", "8613800138000", "duplicate".into());
        accept(&mut log, &mut book, r1, "b");
        let whole: Arc<str> = "request rejected: no".into();
        let r2 = log.open(info("r2", "t2"), book.len()).unwrap();
        log.refuse(r2, "c", "1", whole.clone());
        log.refuse(r2, "d", "2", whole);
        let r3 = log.open(info("r3", "t1"), book.len()).unwrap();
        accept(&mut log, &mut book, r3, "e");

        let got: Vec<_> = log
            .submissions(&book)
            .into_iter()
            .map(|s| {
                (
                    s.request_id,
                    s.user_task_id,
                    s.order_id,
                    s.accepted,
                    s.error,
                )
            })
            .collect();
        let row = |r: &str, ut: &str, id: &str, err: Option<&str>| {
            (
                r.to_owned(),
                ut.to_owned(),
                id.to_owned(),
                err.is_none(),
                err.map(str::to_owned),
            )
        };
        assert_eq!(
            got,
            vec![
                row("r1", "t1", "bad", Some("bad phone")),
                row("r1", "t1", "a", None),
                row("r1", "t1", "a", Some("duplicate")),
                row("r1", "t1", "b", None),
                row("r2", "t2", "c", Some("request rejected: no")),
                row("r2", "t2", "d", Some("request rejected: no")),
                row("r3", "t1", "e", None),
            ]
        );
        let r = log.get(r3).unwrap();
        assert!(Arc::ptr_eq(
            &r.order_callback_url,
            &log.get(r1).unwrap().order_callback_url
        ));
        assert_eq!(
            log.strings.len(),
            5,
            "acct, t1, t2 and the two URLs, once each"
        );
    }
}
