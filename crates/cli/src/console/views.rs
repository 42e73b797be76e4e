//! The values of the console's templates (`templates/console/`, compiled and checked at
//! build time by askama; HTML-escaped by default).

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Who;

/// Renders a page; a template failure is a 500 (it cannot happen with the values these
/// types hold, but is not a panic).
pub(crate) fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(error) => {
            tracing::warn!(%error, "console: a page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// The navigation bar and the message of the last form.
pub(crate) struct Nav {
    pub user: String,
    pub institution: String,
    pub admin: bool,
    pub csrf: String,
    pub flash: String,
    pub flash_error: bool,
}

impl Nav {
    pub fn of(who: &Who) -> Nav {
        let (flash_error, flash) = who.flash.clone().unwrap_or_default();
        Nav {
            user: who.user.clone(),
            institution: who.institution.clone(),
            admin: who.admin,
            csrf: who.csrf.clone(),
            flash,
            flash_error,
        }
    }
}

#[derive(Template)]
#[template(path = "console/message.html")]
pub(crate) struct MessagePage {
    pub title: String,
    pub text: String,
}

#[derive(Template)]
#[template(path = "console/signin.html")]
pub(crate) struct SigninPage {
    pub csrf: String,
    pub error: String,
    pub user: String,
}

/// One result in a list.
pub(crate) struct ResultRow {
    pub export_id: String,
    pub href: String,
    pub received: String,
    pub outcome: String,
    pub failed: bool,
    pub reason: String,
    pub mms_id: String,
    pub mms_href: String,
    pub oclc: String,
    pub host_message: String,
}

#[derive(Template)]
#[template(path = "console/imports.html")]
pub(crate) struct ImportsPage {
    pub nav: Nav,
    pub institutions: Vec<String>,
    pub institution: String,
    pub outcome: String,
    pub reason: String,
    pub since: String,
    pub since_utc: String,
    pub notice: String,
    pub summary: String,
    pub rows: Vec<ResultRow>,
}

#[derive(Template)]
#[template(path = "console/result.html")]
pub(crate) struct ResultPage {
    pub nav: Nav,
    pub row: ResultRow,
    pub institution: String,
    pub zone: String,
    pub decided: String,
    pub batch: String,
    pub policy: String,
    pub retry_of: String,
    pub retry_of_href: String,
    pub trace: Vec<String>,
    pub steps: Vec<String>,
    pub find_href: String,
}

/// A field as cataloguers read it.
pub(crate) struct FieldView {
    pub tag: String,
    /// Two indicators, `#` for blank; empty for a control field.
    pub ind: String,
    /// A control field's value.
    pub control: String,
    /// `$a` and its value, in order.
    pub subfields: Vec<(String, String)>,
}

pub(crate) struct LockView {
    pub holder: String,
    pub since: String,
    pub expires: String,
    pub held: bool,
    pub mine: bool,
    pub can_release: bool,
}

pub(crate) struct RevisionRow {
    pub revision: u64,
    pub saved: String,
    pub replaced: String,
    pub diff_href: String,
    pub current: bool,
}

pub(crate) struct DiffLine {
    pub class: String,
    pub sign: String,
    pub text: String,
}

#[derive(Template)]
#[template(path = "console/record.html")]
pub(crate) struct RecordPage {
    pub nav: Nav,
    pub zone: String,
    pub mms_id: String,
    pub title: String,
    pub leader: String,
    pub leader_17: String,
    pub brief_level: String,
    pub revision: u64,
    pub originating_version: String,
    pub withdrawn: bool,
    pub oclc: Vec<String>,
    pub fields: Vec<FieldView>,
    pub lock: Option<LockView>,
    pub revisions: Vec<RevisionRow>,
    pub diff_title: String,
    pub diff: Vec<DiffLine>,
    pub editing: bool,
    pub mrk: String,
}

pub(crate) struct FoundRow {
    pub href: String,
    pub mms_id: String,
    pub how: String,
    pub title: String,
}

#[derive(Template)]
#[template(path = "console/records.html")]
pub(crate) struct RecordsPage {
    pub nav: Nav,
    pub zones: Vec<String>,
    pub zone: String,
    pub oclc: String,
    pub notice: String,
    pub rows: Vec<FoundRow>,
}

pub(crate) struct DuplicateRow {
    pub number: u64,
    pub records: Vec<FoundRow>,
}

#[derive(Template)]
#[template(path = "console/duplicates.html")]
pub(crate) struct DuplicatesPage {
    pub nav: Nav,
    pub zones: Vec<String>,
    pub zone: String,
    pub rows: Vec<DuplicateRow>,
}

pub(crate) struct LockRow {
    pub href: String,
    pub zone: String,
    pub mms_id: String,
    pub view: LockView,
}

#[derive(Template)]
#[template(path = "console/locks.html")]
pub(crate) struct LocksPage {
    pub nav: Nav,
    pub rows: Vec<LockRow>,
}

pub(crate) struct PolicyRow {
    pub institution: String,
    pub has_active: bool,
    pub active: String,
    pub history: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/policies.html")]
pub(crate) struct PoliciesPage {
    pub nav: Nav,
    pub rows: Vec<PolicyRow>,
    /// Published policies, newest first: (the value `policy activate` takes, a label).
    pub published: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "console/policy_diff.html")]
pub(crate) struct PolicyDiffPage {
    pub nav: Nav,
    pub institution: String,
    pub file: String,
    pub from: String,
    pub to: String,
    /// The report, or why there is none.
    pub outcome: Result<PolicyDiff, String>,
}

/// A `policy diff` report as the page shows it.
pub(crate) struct PolicyDiff {
    pub total: usize,
    pub changed: usize,
    /// The changed records' lines, at most [`super::pages::DIFF_LINES_SHOWN`].
    pub lines: Vec<String>,
    /// Changed records not listed.
    pub more: usize,
    pub by_change: Vec<(String, usize)>,
}

#[derive(Template)]
#[template(path = "console/upload.html")]
pub(crate) struct UploadPage {
    pub nav: Nav,
    pub institutions: Vec<String>,
    pub institution: String,
    pub max_mib: usize,
}

#[derive(Template)]
#[template(path = "console/report.html")]
pub(crate) struct ReportPage {
    pub nav: Nav,
    pub file: String,
    pub institution: String,
    pub pending: bool,
    pub n_records: usize,
    pub n_added: usize,
    pub n_merged: usize,
    pub n_failed: usize,
    pub refused: String,
    pub failed: Vec<(u64, ResultRow)>,
    pub report_href: String,
    pub rejected_href: String,
}
