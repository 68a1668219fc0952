//! Planning the catalogue: products (with their variants) and coupons, and the post and user ids
//! WooCommerce would have given everything, before any of it is rendered as JSON.

use super::*;

impl Generator {
    // ----- products & coupons -----

    pub(super) fn plan_products(&mut self) -> Vec<ProductPlan> {
        let mut rng = self.rng.fork(2);
        let n = CATALOG.len() * self.scale as usize;
        let mut out = Vec::with_capacity(n);
        let mut skus = BTreeSet::new();
        for i in 0..n {
            let (base, category, regular, sale) = CATALOG[i % CATALOG.len()];
            let block = i / CATALOG.len();
            let name = if block == 0 {
                base.to_owned()
            } else {
                let prefix = VARIANT_PREFIXES[(block - 1) % VARIANT_PREFIXES.len()];
                let round = (block - 1) / VARIANT_PREFIXES.len();
                if round == 0 {
                    format!("{prefix} {base}")
                } else {
                    format!("{prefix} {base} {}", round + 1)
                }
            };
            let slug = slugify(&name);
            let initials: String = name
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter_map(|w| w.chars().next())
                .map(|c| c.to_ascii_uppercase())
                .collect();
            let mut sku = format!("{initials}-{:03}", 100 + i);
            while !skus.insert(sku.clone()) {
                sku.push('X');
            }
            let jitter = if block == 0 {
                0
            } else {
                rng.range(-3, 6) * 100
            };
            let regular = cents((regular + jitter).max(900));
            let sale = (sale > 0).then(|| cents(sale + jitter));
            // The last 3 of each catalogue block launch inside the window; the rest already exist.
            let created = if i % CATALOG.len() >= CATALOG.len() - 3 {
                Self::between(
                    &mut rng,
                    self.start + TimeDelta::days(10),
                    self.start + TimeDelta::days(120),
                )
            } else {
                Self::between(
                    &mut rng,
                    self.start - TimeDelta::days(400),
                    self.start - TimeDelta::days(10),
                )
            };
            let modified = if rng.chance(0.3) {
                created
            } else {
                let hi = (created + TimeDelta::days(200)).min(self.end);
                let lo = (created + TimeDelta::seconds(600)).min(hi);
                Self::between(&mut rng, lo, hi)
            };
            out.push(ProductPlan {
                name,
                slug,
                sku,
                category,
                regular,
                sale,
                created,
                modified,
                id: 0,
                image_id: 0,
                total_sales: 0,
                popularity: (CATALOG.len() - i % CATALOG.len()) as u32 + 4,
            });
        }
        out
    }

    pub(super) fn plan_coupons(&mut self) -> Vec<CouponPlan> {
        let mut rng = self.rng.fork(3);
        // (code, kind, amount cents, minimum cents, first order only, description, created offset days
        // from window start (negative = before), active days (0 = forever))
        #[allow(clippy::type_complexity)]
        let base: [(&str, CouponKind, i64, i64, bool, &str, i64, i64); 5] = [
            (
                "welcome10",
                CouponKind::Percent,
                1000,
                0,
                true,
                "10% off a first order (newsletter sign-up).",
                -300,
                0,
            ),
            (
                "spring15",
                CouponKind::Percent,
                1500,
                0,
                false,
                "Spring sale.",
                60,
                60,
            ),
            (
                "freeship",
                CouponKind::FreeShipping,
                0,
                0,
                false,
                "Free shipping, any order.",
                -200,
                0,
            ),
            (
                "save5",
                CouponKind::FixedCart,
                500,
                3000,
                false,
                "$5 off orders over $30.",
                -150,
                0,
            ),
            (
                "vip20",
                CouponKind::Percent,
                2000,
                0,
                false,
                "VIP customers.",
                -90,
                0,
            ),
        ];
        let mut out = Vec::new();
        for block in 0..self.scale as usize {
            for &(code, kind, amount, minimum, first_only, description, created_at, active) in &base
            {
                let code = if block == 0 {
                    code.to_owned()
                } else {
                    format!("{code}_{}", block + 1)
                };
                let created = self.start
                    + TimeDelta::days(created_at + rng.range(-5, 5))
                    + TimeDelta::seconds(rng.range(0, 86_399));
                let active_until = if active == 0 {
                    self.end
                } else {
                    (created + TimeDelta::days(active)).min(self.end)
                };
                let modified =
                    (created + TimeDelta::seconds(rng.range(0, 3 * 86_400))).min(self.end);
                out.push(CouponPlan {
                    code,
                    kind,
                    amount: cents(amount),
                    minimum: cents(minimum),
                    description,
                    first_order_only: first_only,
                    created,
                    modified,
                    active_until,
                    id: 0,
                    usage_count: 0,
                    used_by: Vec::new(),
                });
            }
        }
        out
    }

    // ----- ids -----

    /// Products, coupons, orders and refunds share WordPress's post id sequence, allocated in order of
    /// creation with occasional gaps (drafts, revisions, other post types).
    pub(super) fn assign_post_ids(
        &mut self,
        products: &mut [ProductPlan],
        coupons: &mut [CouponPlan],
        orders: &mut [OrderPlan],
    ) {
        let mut rng = self.rng.fork(5);
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        enum Kind {
            Product(usize),
            Coupon(usize),
            Order(usize),
            Refund(usize),
        }
        let mut timeline: Vec<(Ts, Kind)> = Vec::new();
        timeline.extend(
            products
                .iter()
                .enumerate()
                .map(|(i, p)| (p.created, Kind::Product(i))),
        );
        timeline.extend(
            coupons
                .iter()
                .enumerate()
                .map(|(i, c)| (c.created, Kind::Coupon(i))),
        );
        for (i, o) in orders.iter().enumerate() {
            timeline.push((o.created, Kind::Order(i)));
            if let Some(r) = &o.refund {
                timeline.push((r.created, Kind::Refund(i)));
            }
        }
        timeline.sort();
        let mut next = 1_000 + rng.below(500);
        for (_, kind) in timeline {
            next += 1 + if rng.chance(0.25) { rng.below(4) } else { 0 };
            match kind {
                Kind::Product(i) => {
                    products[i].id = next;
                    next += 1;
                    products[i].image_id = next; // the product image attachment
                }
                Kind::Coupon(i) => coupons[i].id = next,
                Kind::Order(i) => orders[i].id = next,
                Kind::Refund(i) => {
                    if let Some(r) = orders[i].refund.as_mut() {
                        r.id = next;
                    }
                }
            }
        }
    }

    pub(super) fn assign_user_ids(&mut self, users: &mut [UserPlan], _orders: &[OrderPlan]) {
        let mut rng = self.rng.fork(6);
        let mut order: Vec<usize> = (0..users.len()).collect();
        // Staff keep ids 1 and 2; everyone else by registration time.
        order.sort_by_key(|&i| {
            (
                users[i].role == "customer" || users[i].role == "subscriber",
                users[i].registered,
                i,
            )
        });
        let mut next = 0;
        for i in order {
            next += 1 + if next > 2 && rng.chance(0.05) {
                rng.below(3)
            } else {
                0
            };
            users[i].id = next;
        }
    }
}
