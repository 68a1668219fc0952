//! Several jobs side by side (four, then as many as Meta's insights throttle allows), read in date order, split where one fails or lingers.

use super::*;

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// The record dates of `pages` in the order they arrived, checked to never go back, and every
/// `{ad}:{date}` id checked to come once.
fn dates_in_order(pages: &[growthflow_core::connector::Page]) -> Vec<String> {
    let records: Vec<_> = pages.iter().flat_map(|p| &p.records).collect();
    let dates: Vec<String> = records.iter().map(|r| r.cursor.clone().unwrap()).collect();
    assert!(
        dates.windows(2).all(|w| w[0] <= w[1]),
        "records out of date order"
    );
    let mut ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), records.len(), "a row came twice");
    dates
}

fn checkpoints(pages: &[growthflow_core::connector::Page]) -> Vec<Value> {
    pages.iter().filter_map(|p| p.checkpoint.clone()).collect()
}

/// 2023-12-01 to 2024-06-17: 200 days, planned as 67 + 67 + 66.
const JOB_RANGES_200: [(&str, &str); 3] = [
    ("2023-12-01", "2024-02-05"),
    ("2024-02-06", "2024-04-12"),
    ("2024-04-13", "2024-06-17"),
];

#[tokio::test]
async fn a_long_range_runs_as_several_jobs_polled_together_and_read_in_date_order() {
    let server = MockServer::start().await;
    let clock = pinned();
    // The first job ends at its 2nd poll, the second at its 3rd, the third at its 1st.
    let fake = FakeGraph::failing(|_, _| false).with_polls(|days| match days[0].to_string() {
        d if d == JOB_RANGES_200[0].0 => 2,
        d if d == JOB_RANGES_200[1].0 => 3,
        _ => 1,
    });
    mount_fake(&server, &fake).await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let pages = read_pages(
        &meta,
        request("ad_insights", None, window((2023, 12, 1), (2024, 6, 18))),
    )
    .await
    .unwrap();

    let range = |a: &str, b: &str| json!({"since": a, "until": b}).to_string();
    let jobs: Vec<String> = fake.jobs().into_iter().map(|(r, _, _)| r).collect();
    let want: Vec<String> = JOB_RANGES_200.iter().map(|(a, b)| range(a, b)).collect();
    assert_eq!(jobs, want, "three jobs of at most 90 days, in date order");
    for (a, b) in JOB_RANGES_200 {
        assert!((day(b) - day(a)).num_days() < 90);
    }
    // All three started before any row is read; each round polls every running job once; the
    // first job's rows are read as soon as it completes, while the second still runs.
    assert_eq!(
        fake.events(),
        [
            "post 0",
            "post 1",
            "post 2",
            "poll 0 Job Running",
            "poll 1 Job Running",
            "poll 2 Job Completed",
            "poll 0 Job Completed",
            "poll 1 Job Running",
            "rows 0",
            "poll 1 Job Completed",
            "rows 1",
            "rows 2",
        ]
    );
    // One wait per round, not per job: 1 s, then doubling.
    assert_eq!(waits(&clock), [1, 2, 4].map(Duration::from_secs).to_vec());
    let dates = dates_in_order(&pages);
    assert_eq!(dates.len(), 200 * 3);
    assert_eq!(dates.first().unwrap(), "2023-12-01");
    assert_eq!(dates.last().unwrap(), "2024-06-17");
    assert_eq!(
        checkpoints(&pages),
        JOB_RANGES_200.map(|(_, until)| json!({ "cursor": until }))
    );
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn no_more_than_four_jobs_run_at_once_and_freed_slots_start_the_next() {
    use growthflow_meta_ads::streams::FIRST_CONCURRENT_JOBS;
    let server = MockServer::start().await;
    let clock = pinned();
    // 2023-01-01 to 2024-06-30, 547 days: seven jobs (79 days, then six of 78). The first job is
    // slow (5 polls); the others end after 1 to 3 polls, so slots free up while it runs.
    let polls = [5, 1, 2, 1, 3, 1, 1];
    let first_days = [
        "2023-01-01",
        "2023-03-21",
        "2023-06-07",
        "2023-08-24",
        "2023-11-10",
        "2024-01-27",
        "2024-04-14",
    ];
    let fake = FakeGraph::failing(|_, _| false).with_polls(move |days| {
        let k = first_days
            .iter()
            .position(|d| *d == days[0].to_string())
            .unwrap_or_else(|| panic!("unplanned job from {}", days[0]));
        polls[k]
    });
    mount_fake(&server, &fake).await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let pages = read_pages(
        &meta,
        request("ad_insights", None, window((2023, 1, 1), (2024, 7, 1))),
    )
    .await
    .unwrap();

    // No insights throttle header: the number of jobs stays where it starts.
    assert_eq!(FIRST_CONCURRENT_JOBS, 4);
    assert_eq!(
        fake.max_running(),
        FIRST_CONCURRENT_JOBS,
        "never more than four running, and four used"
    );
    let jobs = fake.jobs();
    assert_eq!(jobs.len(), 7, "each slice one job");
    let mut expected_since = day("2023-01-01");
    for (r, _, _) in &jobs {
        let r: Value = serde_json::from_str(r).unwrap();
        let (since, until) = (
            day(r["since"].as_str().unwrap()),
            day(r["until"].as_str().unwrap()),
        );
        assert_eq!(since, expected_since, "jobs tile the range in order");
        assert!((until - since).num_days() < 90);
        expected_since = until + chrono::Duration::days(1);
    }
    assert_eq!(expected_since, day("2024-07-01"));
    // Jobs 5 to 7 started as earlier ones ended, while the slow first job still ran, and every job
    // started before the first one's rows could be read.
    let events = fake.events();
    let at = |e: &str| events.iter().position(|x| x == e).unwrap();
    assert!(at("post 4") < at("poll 0 Job Completed"));
    assert!(at("post 6") < at("poll 0 Job Completed"));
    assert!(at("post 4") > at("poll 1 Job Completed"));
    assert!(at("post 6") < at("rows 0"));
    let rows: Vec<&String> = events.iter().filter(|e| e.starts_with("rows")).collect();
    assert_eq!(
        rows,
        ["rows 0", "rows 1", "rows 2", "rows 3", "rows 4", "rows 5", "rows 6"]
    );
    // Rounds: 1 s; 1 s (new jobs); 1 s (new job); then 2 s and 4 s for the slow ones.
    assert_eq!(
        waits(&clock),
        [1, 1, 1, 2, 4].map(Duration::from_secs).to_vec()
    );
    let dates = dates_in_order(&pages);
    assert_eq!(dates.len(), 547 * 3);
    assert_eq!(checkpoints(&pages).len(), 7);
    assert_eq!(
        checkpoints(&pages).last(),
        Some(&json!({"cursor": "2024-06-30"}))
    );
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn a_failing_job_in_the_middle_is_split_and_its_rows_come_in_its_place() {
    let server = MockServer::start().await;
    let clock = pinned();
    // The middle job (67 days) fails; its halves (33 and 34 days) complete.
    let middle = day(JOB_RANGES_200[1].0);
    let fake = FakeGraph::failing(move |days, _| days.len() > 40 && days[0] == middle);
    mount_fake(&server, &fake).await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let pages = read_pages(
        &meta,
        request("ad_insights", None, window((2023, 12, 1), (2024, 6, 18))),
    )
    .await
    .unwrap();

    let range = |a: &str, b: &str| json!({"since": a, "until": b}).to_string();
    let jobs: Vec<String> = fake.jobs().into_iter().map(|(r, _, _)| r).collect();
    assert_eq!(
        jobs,
        [
            range("2023-12-01", "2024-02-05"),
            range("2024-02-06", "2024-04-12"),
            range("2024-04-13", "2024-06-17"),
            range("2024-02-06", "2024-03-09"),
            range("2024-03-10", "2024-04-12"),
        ]
    );
    // The halves start in the round that saw the failure; the first job's rows are read while they
    // run, then the halves' rows, then the third job's, which had completed long before.
    assert_eq!(
        fake.events(),
        [
            "post 0",
            "post 1",
            "post 2",
            "poll 0 Job Completed",
            "poll 1 Job Failed",
            "poll 2 Job Completed",
            "post 3",
            "post 4",
            "rows 0",
            "poll 3 Job Completed",
            "poll 4 Job Completed",
            "rows 3",
            "rows 4",
            "rows 2",
        ]
    );
    assert_eq!(waits(&clock), vec![Duration::from_secs(1); 2]);
    let dates = dates_in_order(&pages);
    assert_eq!(dates.len(), 200 * 3, "every row once");
    let cp = |d: &str| json!({ "cursor": d });
    assert_eq!(
        checkpoints(&pages),
        [
            cp("2024-02-05"),
            cp("2024-03-09"),
            cp("2024-04-12"),
            cp("2024-06-17")
        ]
    );
    assert_no_unexpected(catch_all).await;
}

#[tokio::test]
async fn a_job_running_an_hour_after_its_own_start_is_split() {
    use growthflow_core::http::Clock;
    let server = MockServer::start().await;
    let clock = pinned();
    // The whole 61-day job never ends, and each of its polls finds 20 more minutes gone on the
    // client's clock; its halves end at their second poll.
    let whole = day("2024-05-01");
    let moved = clock.clone();
    let fake = FakeGraph::failing(|_, _| false)
        .with_polls(move |days| if days.len() == 61 { u32::MAX } else { 2 })
        .on_poll(move |days| {
            if days.len() == 61 && days[0] == whole {
                drop(moved.sleep(Duration::from_secs(20 * 60)));
            }
        });
    mount_fake(&server, &fake).await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let pages = read_pages(
        &meta,
        request("ad_insights", None, window((2024, 5, 1), (2024, 7, 1))),
    )
    .await
    .unwrap();

    let range = |a: &str, b: &str| json!({"since": a, "until": b}).to_string();
    let jobs: Vec<String> = fake.jobs().into_iter().map(|(r, _, _)| r).collect();
    assert_eq!(
        jobs,
        [
            range("2024-05-01", "2024-06-30"),
            range("2024-05-01", "2024-05-30"),
            range("2024-05-31", "2024-06-30"),
        ]
    );
    // Given up at the poll that found it running 60 min after its start; the halves, started an
    // hour into the read, are timed from their own start and complete.
    let s = Duration::from_secs;
    assert_eq!(
        waits(&clock),
        [s(1), s(1200), s(2), s(1200), s(4), s(1200), s(1), s(2)]
    );
    assert_eq!(
        fake.events()[..4],
        [
            "post 0",
            "poll 0 Job Running",
            "poll 0 Job Running",
            "poll 0 Job Running"
        ]
    );
    assert_eq!(dates_in_order(&pages).len(), 61 * 3);
    assert_eq!(
        checkpoints(&pages),
        [
            json!({"cursor": "2024-05-30"}),
            json!({"cursor": "2024-06-30"})
        ]
    );
    assert_no_unexpected(catch_all).await;
}

/// Two years (nine jobs) read with Meta reporting `throttle` % on every job start and poll. The first
/// job is slow (6 polls), the others end at their first poll.
async fn read_nine_jobs(throttle: f64) -> (FakeGraph, Vec<growthflow_core::connector::Page>) {
    let server = MockServer::start().await;
    let clock = pinned();
    let fake = FakeGraph::failing(|_, _| false)
        .with_polls(|days| {
            if days[0].to_string() == "2022-07-01" {
                6
            } else {
                1
            }
        })
        .with_throttle(throttle);
    mount_fake(&server, &fake).await;
    let catch_all = mount_catch_all(&server).await;
    let meta = connector(&server, &clock);
    let pages = read_pages(
        &meta,
        request("ad_insights", None, window((2022, 7, 1), (2024, 7, 1))),
    )
    .await
    .unwrap();
    assert_no_unexpected(catch_all).await;
    assert_eq!(fake.jobs().len(), 9);
    assert_eq!(dates_in_order(&pages).len(), 731 * 3);
    (fake, pages)
}

#[tokio::test]
async fn a_low_insights_throttle_lets_more_jobs_run_as_jobs_complete() {
    use growthflow_meta_ads::streams::FIRST_CONCURRENT_JOBS;
    let (fake, _) = read_nine_jobs(10.0).await;
    // Round one: four jobs; three of them complete at 10 %, so seven may run, and the five left
    // all start beside the slow first job.
    assert_eq!(fake.max_running(), 6);
    assert!(fake.max_running() > FIRST_CONCURRENT_JOBS);
    let events = fake.events();
    let at = |e: &str| events.iter().position(|x| x == e).unwrap();
    assert_eq!(at("post 4"), at("poll 3 Job Completed") + 1);
    assert!(at("post 8") < at("poll 0 Job Completed"));
}

#[tokio::test]
async fn a_high_insights_throttle_runs_one_job_at_a_time() {
    let (fake, _) = read_nine_jobs(90.0).await;
    // The first start reports 90 %: nothing starts beside a running job, yet the head always may,
    // so the read still ends, each job in its turn.
    assert_eq!(fake.max_running(), 1);
    let posts: Vec<String> = fake
        .events()
        .into_iter()
        .filter(|e| e.starts_with("post"))
        .collect();
    assert_eq!(
        posts,
        (0..9).map(|n| format!("post {n}")).collect::<Vec<_>>()
    );
}
