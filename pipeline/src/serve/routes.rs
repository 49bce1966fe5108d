//! The HTTP surface: GET-only JSON endpoints under `/api/`, the page and its two files (compiled
//! into the binary, so no path from a request ever reaches the file system), and the limits.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::Value;

use super::explorer::{CompareParams, NeuronParams, SearchParams, SqlParams};
use super::playground::SteerParams;
use super::{ApiError, AppState};

/// Requests carry their parameters in the URL; a body is never needed.
const MAX_BODY_BYTES: usize = 16 * 1024;
/// A SQL query or prompt longer than this is refused.
const MAX_QUERY_CHARS: usize = 100_000;

type Shared = State<Arc<AppState>>;
type Params<T> = Result<Query<T>, QueryRejection>;
type Answer = Result<Json<Value>, ApiError>;

/// The explorer's routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/app.css",
            get(|| async { page(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route("/api/overview", get(overview))
        .route("/api/search", get(search))
        .route("/api/neuron", get(neuron))
        .route("/api/compare", get(compare))
        .route("/api/steer", get(steer))
        .route("/api/sql", get(sql))
        .route("/api/sql.csv", get(sql_csv))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

fn page(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The page runs only its own script and style (corpus text is inserted as text, never as
/// markup), and no answer is sniffed as another type.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no page {}; the explorer is at / and its API under /api/",
        uri.path()
    ))
}

/// The parameters, or a 400 naming the one that is wrong.
fn params<T>(p: Params<T>) -> Result<T, ApiError> {
    p.map(|Query(v)| v)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

fn short(what: &str, text: &str) -> Result<(), ApiError> {
    if text.len() > MAX_QUERY_CHARS {
        return Err(ApiError::bad_request(format!(
            "{what} is longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    Ok(())
}

async fn overview(State(s): Shared) -> Answer {
    Ok(Json(s.view().await?.explorer.overview()))
}

async fn search(State(s): Shared, p: Params<SearchParams>) -> Answer {
    let p = params(p)?;
    short("q", &p.q)?;
    s.view().await?.explorer.search(&p).await.map(Json)
}

async fn neuron(State(s): Shared, p: Params<NeuronParams>) -> Answer {
    let p = params(p)?;
    s.view().await?.explorer.neuron_page(&p).await.map(Json)
}

async fn compare(State(s): Shared, p: Params<CompareParams>) -> Answer {
    let p = params(p)?;
    s.view().await?.explorer.compare(&p).await.map(Json)
}

async fn steer(State(s): Shared, p: Params<SteerParams>) -> Answer {
    let p = params(p)?;
    short("prompt", p.prompt.as_deref().unwrap_or(""))?;
    let v = s.view().await?;
    let timeout = v.explorer.timeout;
    tokio::time::timeout(timeout, v.playground.steer(&v.explorer, p))
        .await
        .map_err(|_| {
            ApiError::unavailable(format!(
                "generation ran longer than {} s; ask for fewer tokens",
                timeout.as_secs()
            ))
        })?
        .map(Json)
}

async fn sql(State(s): Shared, p: Params<SqlParams>) -> Answer {
    let p = params(p)?;
    short("q", &p.q)?;
    s.view().await?.explorer.sql(&p).await.map(Json)
}

/// The whole result of a query as a CSV download.
async fn sql_csv(State(s): Shared, p: Params<SqlParams>) -> Result<Response, ApiError> {
    let p = params(p)?;
    short("q", &p.q)?;
    let batches = s.view().await?.explorer.sql_batches(&p.q).await?;
    let csv = crate::sql::to_csv(&batches, true).map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"query.csv\"",
            ),
        ],
        csv,
    )
        .into_response())
}
