//! Query parameters of `GET /api/v1/{plural}` parsed into a store [`ListQuery`] or a change-feed
//! request, without I/O: every bad value is an [`ApiError::BadParameter`] naming the parameter.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use stowage_emulator::selectors::LabelSelector;

use super::error::ApiError;
use super::token;
use crate::mirror::kind::KindSpec;
use crate::store::{ListQuery, MirrorObject, Revision, Sort, SortField};

/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 10;
/// Largest accepted `limit`.
pub const MAX_LIMIT: usize = 500;

/// Every query parameter with a fixed name; any other name must be a column of the kind.
pub const PARAMETERS: [&str; 9] = [
    "page",
    "limit",
    "namespace",
    "search",
    "labelSelector",
    "sort",
    "continue",
    "watch",
    "since",
];

/// Parameters that only make sense for a list, not for the change feed.
const LIST_ONLY: [&str; 4] = ["page", "limit", "sort", "continue"];

/// Filters shared by lists and the change feed.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub namespace: Option<String>,
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    pub labels: Option<LabelSelector>,
    /// The selector as given, for the `continue` fingerprint.
    label_text: String,
    /// Equality filters on columns, compared as string forms.
    pub columns: Vec<(String, String)>,
}

/// A parsed list request.
#[derive(Debug, Clone)]
pub struct ListRequest {
    pub query: ListQuery,
    /// The 1-based page number this request returns.
    pub page: usize,
    /// Fingerprint of kind, filters and sort that `continue` tokens carry.
    pub fingerprint: u64,
}

/// A parsed change-feed request (`watch=true`).
#[derive(Debug, Clone)]
pub struct WatchRequest {
    pub filters: Filters,
    /// Resume after this revision; `None` means from the current revision.
    pub since: Option<Revision>,
}

/// What `GET /api/v1/{plural}` was asked for.
#[derive(Debug, Clone)]
pub enum Request {
    List(ListRequest),
    Watch(WatchRequest),
}

/// Parses the query `pairs` of a request for `kind`; `path_namespace` comes from
/// `/api/v1/namespace/{ns}/{plural}`.
pub fn parse(
    kind: &KindSpec,
    path_namespace: Option<&str>,
    pairs: &[(String, String)],
) -> Result<Request, ApiError> {
    let mut fixed: BTreeMap<&str, &str> = BTreeMap::new();
    let mut columns = Vec::new();
    for (key, value) in pairs {
        if let Some(name) = PARAMETERS.iter().find(|p| **p == key.as_str()) {
            if fixed.insert(name, value.as_str()).is_some() {
                return Err(ApiError::bad(
                    key.as_str(),
                    format!("parameter \"{key}\" is given more than once"),
                ));
            }
        } else if kind.column(key).is_some() {
            columns.push((key.clone(), value.clone()));
        } else {
            return Err(ApiError::bad(
                key.as_str(),
                format!(
                    "unknown parameter \"{key}\": not one of {} nor a column of {} ({})",
                    PARAMETERS.join(", "),
                    kind.kind,
                    column_names(kind)
                ),
            ));
        }
    }

    let filters = parse_filters(kind, path_namespace, &fixed, columns)?;
    let since = fixed
        .get("since")
        .map(|text| parse_since(text))
        .transpose()?;
    if parse_watch(fixed.get("watch").copied())? {
        if let Some(name) = LIST_ONLY.iter().find(|p| fixed.contains_key(*p)) {
            return Err(ApiError::bad(
                *name,
                format!("parameter \"{name}\" is not supported with watch=true"),
            ));
        }
        return Ok(Request::Watch(WatchRequest { filters, since }));
    }
    if since.is_some() {
        return Err(ApiError::bad(
            "since",
            "parameter \"since\" is only valid with watch=true",
        ));
    }

    let limit = fixed
        .get("limit")
        .map_or(Ok(DEFAULT_LIMIT), |text| parse_limit(text))?;
    let sort = parse_sort(kind, fixed.get("sort").copied().unwrap_or_default())?;
    let fingerprint = filters.fingerprint(kind, &sort);
    let token = fixed.get("continue").copied().filter(|t| !t.is_empty());
    let (page, after) = match (fixed.get("page"), token) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad(
                "continue",
                "use either \"page\" or \"continue\", not both",
            ));
        }
        (None, Some(token)) => {
            let (cursor, page) = token::decode(token, fingerprint)
                .map_err(|err| ApiError::bad("continue", err.to_string()))?;
            (page, Some(cursor))
        }
        (Some(text), None) => (parse_page(text)?, None),
        (None, None) => (1, None),
    };
    let offset = match after {
        Some(_) => 0,
        None => (page - 1)
            .checked_mul(limit)
            .ok_or_else(|| ApiError::bad("page", format!("page {page} is out of range")))?,
    };
    let query = ListQuery {
        namespace: filters.namespace,
        search: filters.search,
        labels: filters.labels,
        columns: filters.columns,
        sort,
        limit,
        offset,
        after,
    };
    Ok(Request::List(ListRequest {
        query,
        page,
        fingerprint,
    }))
}

fn parse_filters(
    kind: &KindSpec,
    path_namespace: Option<&str>,
    fixed: &BTreeMap<&str, &str>,
    columns: Vec<(String, String)>,
) -> Result<Filters, ApiError> {
    let query_namespace = fixed.get("namespace").copied().filter(|ns| !ns.is_empty());
    let namespace = match (path_namespace, query_namespace) {
        (Some(path), Some(query)) if path != query => {
            return Err(ApiError::bad(
                "namespace",
                format!("parameter namespace={query} contradicts the path's namespace {path}"),
            ));
        }
        (Some(ns), _) | (None, Some(ns)) => Some(ns.to_string()),
        (None, None) => None,
    };
    if namespace.is_some() && !kind.namespaced {
        return Err(ApiError::bad(
            "namespace",
            format!("{} is cluster-scoped; it has no namespaces", kind.kind),
        ));
    }
    let label_text = fixed.get("labelSelector").copied().unwrap_or_default();
    let labels = match label_text.trim() {
        "" => None,
        text => Some(
            LabelSelector::parse(text)
                .map_err(|err| ApiError::bad("labelSelector", err.to_string()))?,
        ),
    };
    let search = fixed
        .get("search")
        .filter(|s| !s.is_empty())
        .map(|s| s.to_string());
    Ok(Filters {
        namespace,
        search,
        labels,
        label_text: label_text.trim().to_string(),
        columns,
    })
}

fn parse_watch(text: Option<&str>) -> Result<bool, ApiError> {
    match text {
        None | Some("" | "false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(other) => Err(ApiError::bad(
            "watch",
            format!("watch must be true or false, not \"{other}\""),
        )),
    }
}

fn parse_since(text: &str) -> Result<Revision, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad(
            "since",
            format!("since must be a store revision (a non-negative integer), not \"{text}\""),
        )
    })
}

fn parse_limit(text: &str) -> Result<usize, ApiError> {
    match text.parse::<usize>() {
        Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(ApiError::bad(
            "limit",
            format!("limit must be an integer from 1 to {MAX_LIMIT}, not \"{text}\""),
        )),
    }
}

fn parse_page(text: &str) -> Result<usize, ApiError> {
    match text.parse::<usize>() {
        Ok(page) if page >= 1 => Ok(page),
        _ => Err(ApiError::bad(
            "page",
            format!("page must be an integer of at least 1, not \"{text}\""),
        )),
    }
}

/// `name`, `createdAt` or a column name, `-` in front for descending; empty means by name.
pub fn parse_sort(kind: &KindSpec, text: &str) -> Result<Sort, ApiError> {
    let (descending, field) = match text.strip_prefix('-') {
        Some(field) => (true, field),
        None => (false, text),
    };
    let field = match field {
        "" if !descending => SortField::Name,
        "name" => SortField::Name,
        "createdAt" => SortField::CreatedAt,
        column if kind.column(column).is_some() => SortField::Column(column.to_string()),
        other => {
            return Err(ApiError::bad(
                "sort",
                format!(
                    "unknown sort field \"{other}\": use name, createdAt or a column of {} ({})",
                    kind.kind,
                    column_names(kind)
                ),
            ));
        }
    };
    Ok(Sort { field, descending })
}

fn column_names(kind: &KindSpec) -> String {
    if kind.columns.is_empty() {
        return "it has none".to_string();
    }
    kind.columns
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Filters {
    /// Identity of kind, filters and sort for `continue` tokens.
    fn fingerprint(&self, kind: &KindSpec, sort: &Sort) -> u64 {
        let mut columns: Vec<String> = self
            .columns
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        columns.sort();
        let sort_field = match &sort.field {
            SortField::Name => "name".to_string(),
            SortField::CreatedAt => "createdAt".to_string(),
            SortField::Column(column) => format!("column:{column}"),
        };
        let id = kind.id();
        let mut parts = vec![
            id.as_str(),
            self.namespace.as_deref().unwrap_or_default(),
            self.search.as_deref().unwrap_or_default(),
            self.label_text.as_str(),
            sort_field.as_str(),
            if sort.descending { "desc" } else { "asc" },
        ];
        parts.extend(columns.iter().map(String::as_str));
        token::fingerprint(parts)
    }

    /// Whether `object` passes every filter (the change feed filters in memory).
    pub fn matches(&self, object: &MirrorObject) -> bool {
        if self
            .namespace
            .as_ref()
            .is_some_and(|ns| *ns != object.namespace)
        {
            return false;
        }
        if self
            .search
            .as_ref()
            .is_some_and(|s| !object.name.to_lowercase().contains(&s.to_lowercase()))
        {
            return false;
        }
        if let Some(selector) = &self.labels {
            let labels: Map<String, Value> = object
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            if !selector.matches(Some(&labels)) {
                return false;
            }
        }
        self.columns
            .iter()
            .all(|(column, want)| column_equals(object.columns.get(column), want))
    }
}

/// Whether a column value equals a filter's string the way the store compares them: strings as
/// they are, numbers and booleans printed (`3`, `true`); an absent or `null` value equals nothing.
pub fn column_equals(value: Option<&Value>, want: &str) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => s == want,
        // `Value == str` only matches strings, so compare the printed form.
        Some(other) => {
            let printed = other.to_string();
            printed == want
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::mirror::kind::{ColumnSpec, ColumnType};
    use crate::store::Cursor;

    fn pods() -> KindSpec {
        let column = |name: &str, path: &str| ColumnSpec {
            name: name.into(),
            path: path.into(),
            column_type: ColumnType::String,
            index: true,
        };
        KindSpec {
            group: String::new(),
            version: "v1".into(),
            kind: "Pod".into(),
            plural: "pods".into(),
            namespaced: true,
            prune: vec![],
            keep_secret_data: false,
            columns: vec![
                column("phase", ".status.phase"),
                column("node_name", ".spec.nodeName"),
            ],
        }
    }

    fn nodes() -> KindSpec {
        KindSpec {
            kind: "Node".into(),
            plural: "nodes".into(),
            namespaced: false,
            columns: vec![],
            ..pods()
        }
    }

    fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
        query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn list(query: &[(&str, &str)]) -> ListRequest {
        match parse(&pods(), None, &pairs(query)) {
            Ok(Request::List(list)) => list,
            other => panic!("expected a list request, got {other:?}"),
        }
    }

    fn rejected(kind: &KindSpec, path_ns: Option<&str>, query: &[(&str, &str)]) -> String {
        match parse(kind, path_ns, &pairs(query)) {
            Err(ApiError::BadParameter { parameter, .. }) => parameter,
            other => panic!("expected a 400 for {query:?}, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_first_page_of_ten_by_name() {
        let req = list(&[]);
        assert_eq!(
            (req.page, req.query.limit, req.query.offset),
            (1, DEFAULT_LIMIT, 0)
        );
        assert_eq!(req.query.sort, Sort::default());
        assert!(
            req.query.after.is_none()
                && req.query.namespace.is_none()
                && req.query.labels.is_none()
        );
    }

    #[test]
    fn every_parameter_lands_in_the_list_query() {
        let req = list(&[
            ("page", "3"),
            ("limit", "20"),
            ("namespace", "shop"),
            ("search", "Web"),
            ("labelSelector", "app=web,tier!=db"),
            ("phase", "Running"),
            ("sort", "-createdAt"),
        ]);
        assert_eq!(req.page, 3);
        assert_eq!((req.query.limit, req.query.offset), (20, 40));
        assert_eq!(req.query.namespace.as_deref(), Some("shop"));
        assert_eq!(req.query.search.as_deref(), Some("Web"));
        assert_eq!(
            req.query.labels,
            Some(LabelSelector::parse("app=web,tier!=db").expect("selector"))
        );
        assert_eq!(
            req.query.columns,
            vec![("phase".to_string(), "Running".to_string())]
        );
        assert_eq!(
            req.query.sort,
            Sort {
                field: SortField::CreatedAt,
                descending: true
            }
        );
    }

    #[test]
    fn sort_fields() {
        let kind = pods();
        let sort = |text: &str| parse_sort(&kind, text);
        assert_eq!(sort(""), Ok(Sort::default()));
        assert_eq!(
            sort("name"),
            Ok(Sort {
                field: SortField::Name,
                descending: false
            })
        );
        assert_eq!(
            sort("-name"),
            Ok(Sort {
                field: SortField::Name,
                descending: true
            })
        );
        assert_eq!(
            sort("phase"),
            Ok(Sort {
                field: SortField::Column("phase".into()),
                descending: false
            })
        );
        assert!(sort("-").is_err());
        assert!(sort("uid").is_err());
    }

    #[test]
    fn namespace_from_path_and_query() {
        let in_path = |query: &[(&str, &str)]| match parse(&pods(), Some("shop"), &pairs(query)) {
            Ok(Request::List(list)) => list.query.namespace,
            other => panic!("{other:?}"),
        };
        assert_eq!(in_path(&[]).as_deref(), Some("shop"));
        assert_eq!(in_path(&[("namespace", "shop")]).as_deref(), Some("shop"));
        assert_eq!(
            rejected(&pods(), Some("shop"), &[("namespace", "other")]),
            "namespace"
        );
        assert_eq!(
            rejected(&nodes(), None, &[("namespace", "shop")]),
            "namespace"
        );
        assert_eq!(list(&[("namespace", "")]).query.namespace, None);
    }

    #[test]
    fn bad_values_name_their_parameter() {
        let kind = pods();
        for (query, parameter) in [
            (vec![("limit", "0")], "limit"),
            (vec![("limit", "501")], "limit"),
            (vec![("limit", "ten")], "limit"),
            (vec![("limit", "-1")], "limit"),
            (vec![("page", "0")], "page"),
            (vec![("page", "x")], "page"),
            (vec![("page", "99999999999999999999")], "page"),
            (vec![("labelSelector", "app in (")], "labelSelector"),
            (vec![("colour", "red")], "colour"),
            (vec![("sort", "colour")], "sort"),
            (vec![("continue", "!!!")], "continue"),
            (vec![("page", "2"), ("continue", "abc")], "continue"),
            (vec![("since", "abc"), ("watch", "true")], "since"),
            (vec![("since", "3")], "since"),
            (vec![("watch", "maybe")], "watch"),
            (vec![("watch", "true"), ("page", "2")], "page"),
            (vec![("watch", "true"), ("sort", "name")], "sort"),
            (vec![("limit", "5"), ("limit", "6")], "limit"),
        ] {
            assert_eq!(rejected(&kind, None, &query), parameter, "{query:?}");
        }
        // Large page numbers that overflow the offset are refused, not wrapped.
        let huge = (usize::MAX / 2).to_string();
        assert_eq!(
            rejected(&kind, None, &[("page", huge.as_str()), ("limit", "500")]),
            "page"
        );
    }

    #[test]
    fn continue_tokens_carry_cursor_and_page_and_belong_to_their_filters() {
        let first = list(&[("phase", "Running"), ("sort", "-phase"), ("limit", "5")]);
        let cursor = Cursor {
            value: json!("Running"),
            namespace: "shop".into(),
            name: "web-1".into(),
        };
        let token = token::encode(&cursor, 2, first.fingerprint);

        let next = list(&[
            ("phase", "Running"),
            ("sort", "-phase"),
            ("limit", "7"),
            ("continue", &token),
        ]);
        assert_eq!(next.page, 2);
        assert_eq!(next.query.after, Some(cursor));
        assert_eq!(next.query.offset, 0);
        assert_eq!(
            next.query.limit, 7,
            "the page size may change between pages"
        );

        for other in [
            vec![("phase", "Pending"), ("sort", "-phase")],
            vec![("phase", "Running"), ("sort", "phase")],
            vec![
                ("phase", "Running"),
                ("sort", "-phase"),
                ("namespace", "shop"),
            ],
            vec![("phase", "Running"), ("sort", "-phase"), ("search", "web")],
            vec![
                ("phase", "Running"),
                ("sort", "-phase"),
                ("labelSelector", "app=web"),
            ],
        ] {
            let mut query = other.clone();
            query.push(("continue", &token));
            assert_eq!(rejected(&pods(), None, &query), "continue", "{other:?}");
        }
        assert_eq!(
            list(&[("continue", "")]).page,
            1,
            "an empty continue is no continue"
        );
    }

    #[test]
    fn watch_requests() {
        let watch = |query: &[(&str, &str)]| match parse(&pods(), None, &pairs(query)) {
            Ok(Request::Watch(watch)) => watch,
            other => panic!("{other:?}"),
        };
        assert_eq!(watch(&[("watch", "true")]).since, None);
        let w = watch(&[
            ("watch", "1"),
            ("since", "42"),
            ("namespace", "shop"),
            ("phase", "Running"),
        ]);
        assert_eq!(w.since, Some(42));
        assert_eq!(w.filters.namespace.as_deref(), Some("shop"));
        assert!(matches!(
            parse(&pods(), None, &pairs(&[("watch", "false")])),
            Ok(Request::List(_))
        ));
    }

    fn object(namespace: &str, name: &str, labels: &[(&str, &str)], phase: Value) -> MirrorObject {
        MirrorObject {
            namespace: namespace.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            resource_version: "1".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::new(),
            created_at: None,
            columns: BTreeMap::from([("phase".to_string(), phase)]),
            object: json!({}).into(),
        }
    }

    #[test]
    fn feed_filters_match_objects() {
        let filters = |query: &[(&str, &str)]| match parse(&pods(), None, &pairs(query)) {
            Ok(Request::Watch(w)) => w.filters,
            other => panic!("{other:?}"),
        };
        let web = object("shop", "Web-1", &[("app", "web")], json!("Running"));
        let db = object("data", "db-0", &[("app", "db")], Value::Null);

        assert!(filters(&[("watch", "true")]).matches(&web));
        let shop = filters(&[("watch", "true"), ("namespace", "shop")]);
        assert!(shop.matches(&web) && !shop.matches(&db));
        let search = filters(&[("watch", "true"), ("search", "wEB")]);
        assert!(search.matches(&web) && !search.matches(&db));
        let labels = filters(&[("watch", "true"), ("labelSelector", "app in (db)")]);
        assert!(!labels.matches(&web) && labels.matches(&db));
        let phase = filters(&[("watch", "true"), ("phase", "Running")]);
        assert!(phase.matches(&web) && !phase.matches(&db));
        let empty_phase = filters(&[("watch", "true"), ("phase", "")]);
        assert!(
            !empty_phase.matches(&web) && !empty_phase.matches(&db),
            "null equals nothing"
        );
    }

    #[test]
    fn column_values_compare_as_strings() {
        assert!(column_equals(Some(&json!("Running")), "Running"));
        assert!(column_equals(Some(&json!(3)), "3"));
        assert!(column_equals(Some(&json!(true)), "true"));
        assert!(!column_equals(Some(&json!(true)), "True"));
        assert!(!column_equals(Some(&Value::Null), ""));
        assert!(!column_equals(None, ""));
    }
}
