//! Planning people and orders: customers and guests, their orders over the window (status, source,
//! session, coupons), and the refunds some orders get.

use super::*;

impl Generator {
    // ----- people & orders -----

    pub(super) fn new_person(&mut self, rng: &mut SplitMix64, capitalise_p: f64) -> Person {
        let first = (*rng.pick(FIRST_NAMES)).to_owned();
        let last = (*rng.pick(LAST_NAMES)).to_owned();
        let domain = *rng.pick(EMAIL_DOMAINS);
        let (f, l) = (first.to_lowercase(), last.to_lowercase());
        let local = match rng.below(4) {
            0 => format!("{f}.{l}"),
            1 => format!("{f}{l}"),
            2 => format!("{}.{l}", &f[..1]),
            _ => format!("{f}_{l}{}", rng.range(1, 99)),
        };
        let mut email = format!("{local}@{domain}");
        let mut n = 2;
        while self.used_emails.contains(&email) {
            email = format!("{local}{n}@{domain}");
            n += 1;
        }
        self.used_emails.insert(email.clone());
        if rng.chance(capitalise_p) {
            email = capitalised(&email);
        }
        let company = if rng.chance(0.08) {
            format!("{last} & Co")
        } else {
            String::new()
        };
        Person {
            first,
            last,
            email,
            phone: format!("+1 {} 555 01{:02}", rng.range(201, 989), rng.range(0, 99)),
            street: format!("{} {}", rng.range(1, 2400), rng.pick(STREETS)),
            city: rng.below(CITIES.len() as u64) as usize,
            company,
        }
    }

    pub(super) fn username_for(&mut self, email: &str) -> String {
        let base: String = email
            .trim()
            .to_lowercase()
            .split('@')
            .next()
            .unwrap_or("user")
            .to_owned();
        let mut name = base.clone();
        let mut n = 2;
        while !self.used_usernames.insert(name.clone()) {
            name = format!("{base}{n}");
            n += 1;
        }
        name
    }

    #[allow(clippy::type_complexity)]
    pub(super) fn plan_people_and_orders(
        &mut self,
        products: &[ProductPlan],
        coupons: &[CouponPlan],
    ) -> (Vec<UserPlan>, Vec<Person>, Vec<OrderPlan>) {
        let mut rng = self.rng.fork(4);
        let scale = self.scale as usize;
        let n_orders = self.orders.unwrap_or(300 * scale);

        // Staff and subscribers first (they never order).
        let mut users: Vec<UserPlan> = Vec::new();
        let staff: [(&str, &str, &str, &str, i64); 2] = [
            (
                "Morgan",
                "Reyes",
                "admin@shop.sandbox.test",
                "administrator",
                800,
            ),
            (
                "Sam",
                "Okoro",
                "sam.okoro@shop.sandbox.test",
                "shop_manager",
                700,
            ),
        ];
        for (first, last, email, role, days_before) in staff {
            self.used_emails.insert(email.to_owned());
            let person = Person {
                first: first.to_owned(),
                last: last.to_owned(),
                email: email.to_owned(),
                phone: String::new(),
                street: String::new(),
                city: 0,
                company: String::new(),
            };
            let username = self.username_for(email);
            users.push(UserPlan {
                person,
                role,
                username,
                registered: self.start - TimeDelta::days(days_before),
                registered_at_order: None,
                id: 0,
                orders: Vec::new(),
                avatar: rng.hex(32),
            });
        }
        for _ in 0..4 * scale {
            let person = self.new_person(&mut rng, 0.05);
            let username = self.username_for(&person.email);
            let registered = Self::between(&mut rng, self.start - TimeDelta::days(300), self.end);
            users.push(UserPlan {
                person,
                role: "subscriber",
                username,
                registered,
                registered_at_order: None,
                id: 0,
                orders: Vec::new(),
                avatar: rng.hex(32),
            });
        }

        // Customers and how many orders each places (repeat purchases).
        let first_customer = users.len();
        let mut slots: Vec<Buyer> = Vec::new();
        for i in 0..120 * scale {
            let person = self.new_person(&mut rng, 0.08);
            let username = self.username_for(&person.email);
            users.push(UserPlan {
                person,
                role: "customer",
                username,
                registered: self.start,
                registered_at_order: None,
                id: 0,
                orders: Vec::new(),
                avatar: rng.hex(32),
            });
            const COUNTS: [u32; 9] = [0, 1, 2, 3, 4, 5, 6, 8, 12];
            const WEIGHTS: [u32; 9] = [200, 350, 200, 120, 60, 30, 20, 15, 5];
            let k = COUNTS[rng.weighted(&WEIGHTS)];
            for _ in 0..k {
                slots.push(Buyer::Customer(first_customer + i));
            }
        }
        slots.truncate(n_orders);

        // Guests fill the rest: mostly one-off, some repeat, a few are registered customers checking
        // out without logging in.
        let mut guests: Vec<Person> = Vec::new();
        let mut guest_slots = Vec::new();
        while slots.len() + guest_slots.len() < n_orders {
            let r = rng.unit();
            if r < 0.12 && !guests.is_empty() {
                let g = rng.below(guests.len() as u64) as usize;
                guest_slots.push(Buyer::Guest(g));
            } else if r < 0.16 {
                // Same person as a registered customer, email typed differently.
                let u = first_customer + rng.below((users.len() - first_customer) as u64) as usize;
                let mut p = users[u].person.clone();
                p.email = if p.email.chars().any(|c| c.is_ascii_uppercase()) {
                    p.email.to_lowercase()
                } else {
                    capitalised(&p.email)
                };
                guests.push(p);
                guest_slots.push(Buyer::Guest(guests.len() - 1));
            } else {
                let mut p = self.new_person(&mut rng, 0.07);
                if rng.chance(0.04) {
                    p.email = format!(" {} ", p.email);
                }
                guests.push(p);
                guest_slots.push(Buyer::Guest(guests.len() - 1));
            }
        }
        slots.extend(guest_slots);
        // Fisher–Yates shuffle so repeat orders spread over the window.
        for i in (1..slots.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            slots.swap(i, j);
        }

        // Order times: a daily profile (weekends and a sale fortnight are busier), local-hour profile.
        let days = WINDOW_DAYS as usize;
        let sale_start = 75;
        let day_weights: Vec<u32> = (0..days)
            .map(|d| {
                let weekday = (self.start + TimeDelta::days(d as i64))
                    .and_utc()
                    .timestamp()
                    / 86_400;
                let weekend = matches!((weekday + 4) % 7, 0 | 6);
                let mut w = 10;
                if weekend {
                    w += 3;
                }
                if (sale_start..sale_start + 14).contains(&d) {
                    w += 12;
                }
                w
            })
            .collect();
        const HOUR_WEIGHTS: [u32; 24] = [
            2, 1, 1, 1, 1, 2, 3, 5, 7, 8, 9, 10, 11, 10, 9, 9, 10, 11, 13, 14, 13, 10, 7, 4,
        ];
        let local_midnight = (self.start + self.offset)
            .date()
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default();
        let mut times: Vec<Ts> = Vec::with_capacity(n_orders);
        while times.len() < n_orders {
            let day = rng.weighted(&day_weights) as i64;
            let hour = rng.weighted(&HOUR_WEIGHTS) as i64;
            let local = local_midnight
                + TimeDelta::days(day + 1)
                + TimeDelta::hours(hour)
                + TimeDelta::seconds(rng.range(0, 3599));
            let t = local - self.offset;
            // The first and last local days are cut by the window; draw again outside it.
            if t > self.start && t < self.end {
                times.push(t);
            }
        }
        times.sort();

        let mut orders = Vec::with_capacity(n_orders);
        let mut bought_before: BTreeSet<usize> = BTreeSet::new();
        for (idx, (created, buyer)) in times.into_iter().zip(slots).enumerate() {
            let first_order_of_customer = match buyer {
                Buyer::Customer(u) => bought_before.insert(u),
                Buyer::Guest(_) => false,
            };
            let billing_email = match buyer {
                Buyer::Customer(u) => {
                    let e = &users[u].person.email;
                    let r = rng.unit();
                    if r < 0.06 {
                        e.to_lowercase()
                    } else if r < 0.085 {
                        capitalised(e)
                    } else {
                        e.clone()
                    }
                }
                Buyer::Guest(g) => guests[g].email.clone(),
            };
            if let Buyer::Customer(u) = buyer {
                users[u].orders.push(idx);
            }
            let order = self.plan_order(
                &mut rng,
                created,
                buyer,
                billing_email,
                first_order_of_customer,
                products,
                coupons,
            );
            orders.push(order);
        }
        self.plan_refunds(&mut rng, &mut orders);

        // Registration times: before the window, or at the first order's checkout; no orders → any time.
        for u in users.iter_mut().skip(first_customer) {
            match u.orders.first() {
                Some(&first) => {
                    let first_at = orders[first].created;
                    if rng.chance(0.45) {
                        u.registered = Self::between(
                            &mut rng,
                            self.start - TimeDelta::days(400),
                            (self.start).min(first_at - TimeDelta::minutes(30)),
                        );
                    } else {
                        u.registered = first_at - TimeDelta::seconds(rng.range(30, 600));
                        u.registered_at_order = Some(first);
                    }
                }
                None => {
                    u.registered =
                        Self::between(&mut rng, self.start - TimeDelta::days(400), self.end);
                }
            }
        }
        (users, guests, orders)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn plan_order(
        &mut self,
        rng: &mut SplitMix64,
        created: Ts,
        buyer: Buyer,
        billing_email: String,
        first_order_of_customer: bool,
        products: &[ProductPlan],
        coupons: &[CouponPlan],
    ) -> OrderPlan {
        // Lines: distinct products that exist at order time, popular ones more often.
        let available: Vec<usize> = (0..products.len())
            .filter(|&i| products[i].created < created)
            .collect();
        let n_lines = [1usize, 2, 3, 4][rng.weighted(&[55, 30, 12, 3])].min(available.len());
        let mut lines: Vec<(usize, u32)> = Vec::new();
        let weights: Vec<u32> = available.iter().map(|&i| products[i].popularity).collect();
        while lines.len() < n_lines {
            let p = available[rng.weighted(&weights)];
            if lines.iter().any(|&(q, _)| q == p) {
                continue;
            }
            let qty = [1u32, 2, 3][rng.weighted(&[75, 18, 7])];
            lines.push((p, qty));
        }
        let subtotal: Decimal = lines
            .iter()
            .map(|&(p, q)| products[p].price() * Decimal::from(q))
            .sum();

        // Coupon.
        let mut coupon = None;
        if rng.chance(0.22) {
            let eligible: Vec<usize> = (0..coupons.len())
                .filter(|&c| {
                    let cp = &coupons[c];
                    cp.created < created
                        && created <= cp.active_until
                        && (!cp.first_order_only || first_order_of_customer)
                        && subtotal >= cp.minimum
                        && (cp.kind != CouponKind::FixedCart
                            || subtotal >= cp.amount * Decimal::TWO)
                })
                .collect();
            if !eligible.is_empty() {
                coupon = Some(*rng.pick(&eligible));
            }
        }

        let (source, session) = self.plan_source(rng, created, products, &lines);

        // Status and its timeline.
        let age = self.end - created;
        let r = rng.unit();
        let mut status = if r < 0.055 {
            Status::Cancelled
        } else if r < 0.085 {
            Status::Failed
        } else if r < 0.105 {
            Status::OnHold
        } else if age < TimeDelta::days(2) && r < 0.16 {
            Status::Pending
        } else {
            Status::Processing
        };
        let payment = match status {
            Status::OnHold => "bacs",
            _ if rng.chance(0.7) => "stripe",
            _ => "ppcp-gateway",
        };
        let mut paid = None;
        let mut completed = None;
        let mut modified = created;
        match status {
            Status::Cancelled => {
                modified = if rng.chance(0.6) {
                    created + TimeDelta::minutes(60) // unpaid order cancelled - time limit reached
                } else {
                    created + TimeDelta::seconds(rng.range(3_600, 3 * 86_400))
                };
            }
            Status::Failed => modified = created + TimeDelta::seconds(rng.range(20, 240)),
            Status::OnHold | Status::Pending => {}
            _ => {
                let p = created + TimeDelta::seconds(rng.range(4, 40));
                paid = Some(p);
                modified = p + TimeDelta::seconds(rng.range(1, 5));
                let done = created + TimeDelta::seconds(rng.range(86_400, 4 * 86_400));
                if done <= self.end - TimeDelta::minutes(1) && rng.chance(0.9) {
                    status = Status::Completed;
                    completed = Some(done);
                    modified = done;
                }
            }
        }
        modified = modified.min(self.end);

        let refund = None;

        OrderPlan {
            created,
            buyer,
            billing_email,
            lines,
            coupon,
            source,
            session,
            status,
            payment,
            paid,
            completed,
            modified,
            refund,
            express: rng.chance(0.12),
            note: if rng.chance(0.05) {
                CUSTOMER_NOTES[rng.below(CUSTOMER_NOTES.len() as u64) as usize]
            } else {
                ""
            },
            id: 0,
        }
    }

    /// Refunds: 8 % of all orders (about a third of them full refunds), chosen among paid orders at
    /// least three days old.
    pub(super) fn plan_refunds(&mut self, rng: &mut SplitMix64, orders: &mut [OrderPlan]) {
        let latest = self.end - TimeDelta::minutes(2);
        let mut eligible: Vec<usize> = (0..orders.len())
            .filter(|&i| {
                let o = &orders[i];
                o.paid.is_some() && self.end - o.created > TimeDelta::days(3)
            })
            .collect();
        // Fisher–Yates, then take the first ones.
        for i in (1..eligible.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            eligible.swap(i, j);
        }
        let wanted = orders.len() * 8 / 100;
        let full = wanted * 35 / 100;
        eligible.truncate(wanted);
        eligible.sort_unstable();
        for (n, i) in eligible.into_iter().enumerate() {
            let o = &mut orders[i];
            let Some(paid_at) = o.paid else { continue };
            let earliest = o.completed.unwrap_or(paid_at) + TimeDelta::minutes(10);
            if earliest > latest {
                continue;
            }
            let drawn = o.created
                + TimeDelta::days(rng.range(1, 20))
                + TimeDelta::seconds(rng.range(0, 86_399));
            let at = if drawn > latest {
                // Too late for the window: some time between the earliest moment and "now".
                Self::between(rng, earliest, latest)
            } else {
                drawn.max(earliest)
            };
            let kind = if n % 3 == 0 && n / 3 < full {
                RefundKind::Full
            } else if rng.chance(0.5) {
                RefundKind::OneUnit(rng.below(o.lines.len() as u64) as usize)
            } else {
                RefundKind::Goodwill([10u32, 15, 20, 25][rng.below(4) as usize])
            };
            if matches!(kind, RefundKind::Full) {
                o.status = Status::Refunded;
            }
            o.modified = o.modified.max(at + TimeDelta::seconds(7)).min(self.end);
            o.refund = Some(RefundPlan {
                created: at,
                kind,
                reason: REFUND_REASONS[rng.below(REFUND_REASONS.len() as u64) as usize],
                refunded_by: if rng.chance(0.7) { 2 } else { 1 },
                id: 0,
            });
        }
    }

    pub(super) fn seasonal_campaign(&self, t: Ts) -> &'static str {
        use chrono::Datelike;
        match (t + self.offset).month() {
            12 | 1 | 2 => "winter_sale",
            3..=5 => "spring_sale",
            6..=8 => "summer_sale",
            _ => "fall_sale",
        }
    }

    pub(super) fn plan_source(
        &mut self,
        rng: &mut SplitMix64,
        created: Ts,
        products: &[ProductPlan],
        lines: &[(usize, u32)],
    ) -> (Source, Session) {
        let in_sale = {
            let d = (created - self.start).num_days();
            (75..89).contains(&d)
        };
        let seasonal = self.seasonal_campaign(created);
        // paid social, google cpc, email, organic, referral, typein, admin, none
        let weights: [u32; 8] = if in_sale {
            [32, 12, 18, 12, 5, 12, 3, 6]
        } else {
            [22, 14, 15, 16, 7, 16, 3, 7]
        };
        let mut ua = *rng.pick(USER_AGENTS);
        let source = match rng.weighted(&weights) {
            0 => {
                let instagram = rng.chance(0.4);
                let campaign = if in_sale || rng.chance(0.3) {
                    seasonal.to_owned()
                } else {
                    (*rng.pick(&[
                        "prospecting_lookalike",
                        "retargeting_always_on",
                        "ugc_creators",
                    ]))
                    .to_owned()
                };
                if rng.chance(0.6) {
                    ua = FB_IN_APP_UA;
                }
                Source::Utm {
                    source: if instagram { "instagram" } else { "facebook" },
                    medium: if rng.chance(0.8) {
                        "paid_social"
                    } else {
                        "cpc"
                    },
                    campaign,
                    content: Some(*rng.pick(&["carousel_v2", "video_15s", "static_a", "reel_b"])),
                    term: None,
                    utm_id: Some(format!("1202{}", rng.range(10_000_000, 99_999_999))),
                    referrer: Some(if instagram {
                        "https://l.instagram.com/"
                    } else {
                        "https://l.facebook.com/"
                    }),
                }
            }
            1 => Source::Utm {
                source: "google",
                medium: "cpc",
                campaign: if in_sale && rng.chance(0.5) {
                    seasonal.to_owned()
                } else {
                    (*rng.pick(&["brand_search", "shopping_pmax", "generic_search"])).to_owned()
                },
                content: None,
                term: Some(*rng.pick(&[
                    "organic cotton tee",
                    "canvas tote bag",
                    "merino beanie",
                    "rain jacket",
                ])),
                utm_id: Some(format!("{}", rng.range(20_000_000_000, 21_999_999_999))),
                referrer: Some("https://www.google.com/"),
            },
            2 => Source::Utm {
                source: "klaviyo",
                medium: "email",
                campaign: if in_sale && rng.chance(0.6) {
                    format!("{seasonal}_email")
                } else {
                    (*rng.pick(&[
                        "welcome_series",
                        "abandoned_cart_flow",
                        "monthly_newsletter",
                        "winback_flow",
                    ]))
                    .to_owned()
                },
                content: None,
                term: None,
                utm_id: None,
                referrer: None,
            },
            3 => {
                if rng.chance(0.85) {
                    Source::Organic {
                        engine: "google",
                        referrer: "https://www.google.com/",
                    }
                } else {
                    Source::Organic {
                        engine: "bing",
                        referrer: "https://www.bing.com/",
                    }
                }
            }
            4 => {
                let (host, referrer) = *rng.pick(&[
                    (
                        "blog.example.org",
                        "https://blog.example.org/best-sustainable-basics-2025/",
                    ),
                    ("www.reddit.com", "https://www.reddit.com/"),
                    ("news.example.net", "https://news.example.net/gift-guide/"),
                    ("l.facebook.com", "https://l.facebook.com/"),
                ]);
                Source::Referral { host, referrer }
            }
            5 => Source::Typein,
            6 => Source::Admin,
            _ => Source::None,
        };
        let landing_path = match rng.below(3) {
            0 => "/".to_owned(),
            1 => "/shop/".to_owned(),
            _ => format!("/product/{}/", products[lines[0].0].slug),
        };
        let session = Session {
            landing_path,
            start: created - TimeDelta::seconds(rng.range(90, 2_400)),
            pages: rng.range(1, 14) as u32,
            count: rng.range(1, 6) as u32,
            ua,
        };
        (source, session)
    }
}
