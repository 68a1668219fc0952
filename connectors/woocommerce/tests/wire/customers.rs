//! Customers (no date filter, listed by id) read side by side once the first page gave their count,
//! and never losing one when the listing changes during the read.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::*;

/// WordPress users listed by id with `page`/`per_page` or `offset`/`per_page` (offset wins, as in
/// `WP_User_Query`), counted in `X-WP-Total`. Before answering its `change_at`-th request it applies
/// `change` to the list (a deletion or additions during the read).
struct Users {
    ids: Mutex<Vec<u64>>,
    requests: AtomicUsize,
    change_at: usize,
    change: fn(&mut Vec<u64>),
}

impl Users {
    fn new(n: u64, change_at: usize, change: fn(&mut Vec<u64>)) -> Arc<Users> {
        Arc::new(Users {
            ids: Mutex::new((1..=n).collect()),
            requests: AtomicUsize::new(0),
            change_at,
            change,
        })
    }
}

struct Shared(Arc<Users>);

impl wiremock::Respond for Shared {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let users = &self.0;
        let n = users.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let mut ids = users.ids.lock().unwrap();
        if n == users.change_at {
            (users.change)(&mut ids);
        }
        let q = query(req);
        assert_eq!(q.get("orderby").map(String::as_str), Some("id"));
        let per_page: usize = q["per_page"].parse().unwrap();
        let start = match q.get("offset") {
            Some(o) => o.parse().unwrap(),
            None => (q["page"].parse::<usize>().unwrap() - 1) * per_page,
        };
        let items: Vec<Value> = ids
            .iter()
            .skip(start)
            .take(per_page)
            .map(|id| {
                let mut c = fixture("customer_1187.json");
                c["id"] = json!(id);
                c["date_modified_gmt"] = json!("2025-03-06T09:00:00");
                c
            })
            .collect();
        ResponseTemplate::new(200)
            .insert_header("X-WP-Total", ids.len().to_string().as_str())
            .insert_header(
                "X-WP-TotalPages",
                ids.len().div_ceil(per_page).max(1).to_string().as_str(),
            )
            .set_body_json(Value::Array(items))
    }
}

async fn serve(h: &Harness, users: &Arc<Users>) {
    Mock::given(method("GET"))
        .and(path("/wp-json/wc/v3/customers"))
        .respond_with(Shared(users.clone()))
        .mount(&h.server)
        .await;
}

fn connector(h: &Harness) -> WooCommerce {
    let mut config = h.config();
    config.per_page = 10;
    h.connector_with(config)
}

fn ids_read(pages: &[Page]) -> Vec<u64> {
    pages
        .iter()
        .flat_map(|p| &p.records)
        .map(|r| r.id.parse().unwrap())
        .collect()
}

#[tokio::test]
async fn customers_after_the_first_page_are_read_side_by_side_in_overlapping_slices() {
    let h = Harness::start().await;
    let users = Users::new(95, 0, |_| {});
    serve(&h, &users).await;
    let guard = h.catch_all().await;
    let c = connector(&h);
    let pages = read_all(&c, read_request("customers", None, start()))
        .await
        .unwrap();
    // Every customer once, in id order.
    assert_eq!(ids_read(&pages), (1..=95).collect::<Vec<u64>>());
    let requests = h.finish(guard).await;
    let first = query(&requests[0]);
    assert_eq!(
        (first["page"].as_str(), first["per_page"].as_str()),
        ("1", "10")
    );
    // The rest by offset, each slice starting on the previous one's last customer: 9, 18, …, 90.
    let mut offsets: Vec<u64> = requests[1..]
        .iter()
        .map(|r| query(r)["offset"].parse().unwrap())
        .collect();
    offsets.sort();
    assert_eq!(offsets, (1..=10).map(|k| k * 9).collect::<Vec<u64>>());
    assert!(
        c.limiter().peak_in_flight() >= 2,
        "slices were read side by side"
    );
}

#[tokio::test]
async fn a_customer_deleted_during_the_read_loses_no_other_one() {
    let h = Harness::start().await;
    // Before the third answer, user 5 is deleted: every later user moves one place forward, so one
    // at a page boundary slides onto a page already read (page numbers alone lose it).
    let users = Users::new(95, 3, |ids| ids.retain(|id| *id != 5));
    serve(&h, &users).await;
    let guard = h.catch_all().await;
    let pages = read_all(&connector(&h), read_request("customers", None, start()))
        .await
        .unwrap();
    let mut read = ids_read(&pages);
    read.sort();
    read.dedup();
    let missing: Vec<u64> = (1..=95)
        .filter(|id| *id != 5 && read.binary_search(id).is_err())
        .collect();
    assert_eq!(missing, Vec::<u64>::new(), "customers lost");
    h.finish(guard).await;
}

#[tokio::test]
async fn customers_added_during_the_read_are_read_too() {
    let h = Harness::start().await;
    // Before the second answer, 25 customers register (new ids append to the listing).
    let users = Users::new(45, 2, |ids| ids.extend(46..=70));
    serve(&h, &users).await;
    let guard = h.catch_all().await;
    let pages = read_all(&connector(&h), read_request("customers", None, start()))
        .await
        .unwrap();
    let mut read = ids_read(&pages);
    read.sort();
    read.dedup();
    assert_eq!(read, (1..=70).collect::<Vec<u64>>());
    h.finish(guard).await;
}
