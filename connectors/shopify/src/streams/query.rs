//! What each stream asks Shopify for: its GraphQL document (fields, fragments, root connection, sort
//! keys) and what that document costs under Shopify's query-cost model, so that a page is sized to fit
//! the single-query limit before it is sent, and shrunk in one step when Shopify still refuses it.

use super::*;

/// The fields of an order. `refunds` is a plain list, not a connection.
const ORDER_FIELDS: &str =
    "id legacyResourceId name createdAt updatedAt processedAt cancelledAt cancelReason
      email test tags sourceName currencyCode presentmentCurrencyCode discountCodes
      displayFinancialStatus displayFulfillmentStatus
      customer { id defaultEmailAddress { emailAddress } }
      totalPriceSet { shopMoney { amount currencyCode } }
      subtotalPriceSet { shopMoney { amount currencyCode } }
      totalDiscountsSet { shopMoney { amount currencyCode } }
      totalTaxSet { shopMoney { amount currencyCode } }
      totalShippingPriceSet { shopMoney { amount currencyCode } }
      totalRefundedSet { shopMoney { amount currencyCode } }
      lineItems(first: 50) { nodes { id name sku quantity currentQuantity
        originalUnitPriceSet { shopMoney { amount currencyCode } }
        discountedTotalSet { shopMoney { amount currencyCode } }
        product { id } variant { id } } }
      refunds { id createdAt note totalRefundedSet { shopMoney { amount currencyCode } } }
      customerJourneySummary { ready customerOrderIndex daysToConversion
        firstVisit { ...Visit } lastVisit { ...Visit } }";

const VISIT_FRAGMENT: &str = "fragment Visit on CustomerVisit { id occurredAt source sourceType \
     sourceDescription landingPage referrerUrl referralCode utmParameters { source medium campaign content term } }";

const CUSTOMER_FIELDS: &str =
    "id defaultEmailAddress { emailAddress } firstName lastName state tags createdAt updatedAt numberOfOrders
      amountSpent { amount currencyCode }
      emailMarketingConsent { marketingState marketingOptInLevel consentUpdatedAt }";

const PRODUCT_FIELDS: &str =
    "id legacyResourceId title handle status vendor productType tags createdAt updatedAt
      publishedAt variants(first: 50) { nodes { id sku title price compareAtPrice } }";

const CHECKOUT_FIELDS: &str =
    "id name createdAt updatedAt completedAt abandonedCheckoutUrl discountCodes
      customer { id defaultEmailAddress { emailAddress } }
      subtotalPriceSet { shopMoney { amount currencyCode } }
      totalDiscountSet { shopMoney { amount currencyCode } }
      totalPriceSet { shopMoney { amount currencyCode } }
      lineItems(first: 50) { nodes { id title quantity variant { id } } }";

/// What the read loop needs to know about a stream beyond its [`StreamDef`].
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) def: StreamDef,
    /// The root connection field.
    pub(crate) root: &'static str,
    /// The GraphQL type of its `sortKey` argument.
    pub(crate) sort_type: &'static str,
    /// Sort key of incremental reads.
    pub(crate) incremental_sort: &'static str,
    pub(crate) fields: &'static str,
    pub(crate) fragment: &'static str,
}

impl Spec {
    pub(crate) fn of(name: &str) -> Option<Spec> {
        let spec = match name {
            "orders" => Spec {
                def: ORDERS,
                root: "orders",
                sort_type: "OrderSortKeys",
                incremental_sort: "UPDATED_AT",
                fields: ORDER_FIELDS,
                fragment: VISIT_FRAGMENT,
            },
            "customers" => Spec {
                def: CUSTOMERS,
                root: "customers",
                sort_type: "CustomerSortKeys",
                incremental_sort: "UPDATED_AT",
                fields: CUSTOMER_FIELDS,
                fragment: "",
            },
            "products" => Spec {
                def: PRODUCTS,
                root: "products",
                sort_type: "ProductSortKeys",
                incremental_sort: "UPDATED_AT",
                fields: PRODUCT_FIELDS,
                fragment: "",
            },
            "abandoned_checkouts" => Spec {
                def: ABANDONED_CHECKOUTS,
                root: "abandonedCheckouts",
                sort_type: "AbandonedCheckoutSortKeys",
                incremental_sort: "ID",
                fields: CHECKOUT_FIELDS,
                fragment: "",
            },
            _ => return None,
        };
        Some(spec)
    }

    /// The worst-case cost Shopify requests for one page of `first` records, by its documented model:
    /// a connection costs 2 plus `first` times its node, an object 1, a scalar 0 (see [`selection_cost`]).
    pub(crate) fn requested_cost(&self, first: u32) -> u64 {
        2 + u64::from(first) * (1 + selection_cost(self.fields, self.fragment))
    }

    /// The largest page, up to `max`, whose requested cost fits Shopify's single-query limit — so the
    /// first page of a stream is never answered `MAX_COST_EXCEEDED` (at least 1).
    pub(crate) fn fitting_first(&self, max: u32) -> u32 {
        let per_node = 1 + selection_cost(self.fields, self.fragment);
        let fit = (MAX_QUERY_COST.saturating_sub(2) / per_node).min(u64::from(max));
        u32::try_from(fit).unwrap_or(max).max(1)
    }

    /// The page query, with the page size, cursor, filter and sort key as variables.
    pub(crate) fn document(&self) -> String {
        format!(
            "query Page($first: Int!, $after: String, $query: String, $sortKey: {sort}) {{\n  \
             {root}(first: $first, after: $after, query: $query, sortKey: $sortKey) {{\n    \
             pageInfo {{ hasNextPage endCursor }}\n    nodes {{ {fields} }}\n  }}\n}}\n{fragment}",
            sort = self.sort_type,
            root = self.root,
            fields = self.fields,
            fragment = self.fragment,
        )
    }
}

/// Shopify's single-query cost limit: a query whose requested cost is above it is answered
/// `MAX_COST_EXCEEDED` without being run.
pub const MAX_QUERY_COST: u64 = 1000;

/// The requested cost of one node's selection (`fields`, with `fragment`'s definitions for spreads),
/// following Shopify's documented cost model: a scalar costs 0, an object 1 plus its fields, a connection
/// (`name(first: N) { nodes { … } }`) 2 plus N times (1 + its node's fields). Plain lists are counted once,
/// as Shopify does not say how long they are. An upper bound to start from; the costs Shopify reports
/// afterwards refine it.
pub fn selection_cost(fields: &str, fragment: &str) -> u64 {
    let fragments = parse_fragments(fragment);
    let tokens = tokenize(fields);
    let mut at = 0;
    cost_of(&tokens, &mut at, &fragments)
}

fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' || c == '.' {
            word.push(c);
        } else {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            if matches!(c, '{' | '}' | '(' | ')' | ':') {
                out.push(c.to_string());
            }
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// `fragment Name on Type { … }` definitions, as token lists of their selections.
fn parse_fragments(text: &str) -> HashMap<String, Vec<String>> {
    let tokens = tokenize(text);
    let mut out = HashMap::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] == "fragment" && i + 4 < tokens.len() && tokens[i + 4] == "{" {
            let name = tokens[i + 1].clone();
            let start = i + 5;
            let mut depth = 1;
            let mut j = start;
            while j < tokens.len() && depth > 0 {
                match tokens[j].as_str() {
                    "{" => depth += 1,
                    "}" => depth -= 1,
                    _ => {}
                }
                j += 1;
            }
            out.insert(name, tokens[start..j.saturating_sub(1)].to_vec());
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// The cost of the selection starting at `tokens[*at]`, up to its closing `}` (consumed) or the end.
fn cost_of(tokens: &[String], at: &mut usize, fragments: &HashMap<String, Vec<String>>) -> u64 {
    let mut total = 0u64;
    while *at < tokens.len() {
        let token = tokens[*at].as_str();
        *at += 1;
        if token == "}" {
            break;
        }
        if let Some(name) = token.strip_prefix("...") {
            if let Some(selection) = fragments.get(name) {
                let mut i = 0;
                total += cost_of(selection, &mut i, fragments);
            }
            continue;
        }
        // A field: optional arguments, optional selection.
        let mut first: Option<u64> = None;
        if tokens.get(*at).map(String::as_str) == Some("(") {
            while *at < tokens.len() && tokens[*at] != ")" {
                if tokens[*at] == "first" && tokens.get(*at + 1).map(String::as_str) == Some(":") {
                    first = tokens.get(*at + 2).and_then(|n| n.parse().ok());
                }
                *at += 1;
            }
            *at += 1;
        }
        if tokens.get(*at).map(String::as_str) != Some("{") {
            continue; // a scalar
        }
        *at += 1;
        match first {
            Some(n) => {
                // A connection: its `nodes` selection is what is multiplied; `pageInfo` is not.
                let inner = connection_node_cost(tokens, at, fragments);
                total += 2 + n * (1 + inner);
            }
            None => total += 1 + cost_of(tokens, at, fragments),
        }
    }
    total
}

/// Inside a connection's braces: the cost of its `nodes { … }` (or `edges { node { … } }`) fields.
fn connection_node_cost(
    tokens: &[String],
    at: &mut usize,
    fragments: &HashMap<String, Vec<String>>,
) -> u64 {
    let mut node = 0;
    while *at < tokens.len() {
        let token = tokens[*at].clone();
        *at += 1;
        match token.as_str() {
            "}" => break,
            "nodes" | "node" if tokens.get(*at).map(String::as_str) == Some("{") => {
                *at += 1;
                node += cost_of(tokens, at, fragments);
            }
            "edges" if tokens.get(*at).map(String::as_str) == Some("{") => {
                *at += 1;
                node += connection_node_cost(tokens, at, fragments);
            }
            _ if tokens.get(*at).map(String::as_str) == Some("{") => {
                *at += 1;
                cost_of(tokens, at, fragments); // pageInfo and the like: not per node
            }
            _ => {}
        }
    }
    node
}

/// The page size that fits under Shopify's single-query limit. The query's cost grows linearly with
/// `first`, so when the message gives the cost ("Query cost is 5302, which exceeds the single query max
/// cost limit (1000)") the page is scaled down in one step instead of halving blindly three times;
/// otherwise it is halved.
pub(super) fn fitting_page(first: u32, message: &str) -> u32 {
    let number_after = |marker: &str| -> Option<u64> {
        let rest = &message[message.find(marker)? + marker.len()..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().ok()
    };
    let half = (first / 2).max(1);
    match (
        number_after("Query cost is "),
        number_after("max cost limit ("),
    ) {
        (Some(cost), Some(max)) if cost > max && max > 0 => {
            // A little headroom: the fixed part of the cost does not shrink with `first`.
            let scaled = u64::from(first) * max * 9 / (cost * 10);
            (scaled as u32).clamp(1, half)
        }
        _ => half,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn default_pages_fit_the_single_query_cost_limit() {
        // Worked by hand from the queries: an order is 1 + customer 2 (its default email address an
        // object of its own) + six money bags of 2 + line items (2 + 50 × (1 + 2 + 2 + 1 + 1)) +
        // refunds 3 + journey summary 5.
        assert_eq!(selection_cost(ORDER_FIELDS, VISIT_FRAGMENT), 374);
        assert_eq!(selection_cost(CUSTOMER_FIELDS, ""), 3);
        assert_eq!(selection_cost(PRODUCT_FIELDS, ""), 52);
        assert_eq!(selection_cost(CHECKOUT_FIELDS, ""), 110);
        let sizes: Vec<(&str, u32)> = stream_defs()
            .iter()
            .map(|d| {
                let spec = Spec::of(d.name).unwrap();
                (
                    d.name,
                    spec.fitting_first(crate::config::default_page_size()),
                )
            })
            .collect();
        assert_eq!(
            sizes,
            [
                ("orders", 2),
                ("customers", 100),
                ("products", 18),
                ("abandoned_checkouts", 8)
            ]
        );
        for d in stream_defs() {
            let spec = Spec::of(d.name).unwrap();
            let first = spec.fitting_first(250);
            assert!(spec.requested_cost(first) <= MAX_QUERY_COST, "{}", d.name);
            assert!(
                spec.requested_cost(first + 1) > MAX_QUERY_COST || first == 250,
                "{}",
                d.name
            );
        }
    }

    #[test]
    fn an_over_cost_page_is_scaled_to_fit_in_one_step() {
        let msg = "Query cost is 5302, which exceeds the single query max cost limit (1000).";
        assert_eq!(fitting_page(100, msg), 16);
        assert_eq!(fitting_page(100, "Query cost is 1293"), 50);
        assert_eq!(fitting_page(2, msg), 1);
        assert_eq!(
            fitting_page(
                100,
                "Query cost is 1100, which exceeds the single query max cost limit (1000)."
            ),
            50
        );
    }

    #[test]
    fn documents_name_the_root_and_sort_type() {
        for def in stream_defs() {
            let spec = Spec::of(def.name).unwrap();
            assert_eq!(spec.def, def);
            let doc = spec.document();
            assert!(
                doc.contains(&format!("{}(first: $first", spec.root)),
                "{doc}"
            );
            assert!(doc.contains(spec.sort_type), "{doc}");
            assert!(doc.contains("pageInfo { hasNextPage endCursor }"), "{doc}");
        }
        assert!(Spec::of("orders")
            .unwrap()
            .document()
            .contains("fragment Visit"));
        let t = Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap();
        assert_eq!(search_time(t), "'2025-03-01T00:00:00Z'");
    }
}
