//! The portal's HTML: escaping, the page layout, and responses that keep codes out of caches.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// `text` with the characters HTML gives a meaning replaced by entities.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `content` (already HTML); `title` is escaped.
pub fn layout(title: &str, content: &str) -> String {
    let title = escape(title);
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Kith</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f4f6f8; color: #1d2630; margin: 0; }}
main {{ max-width: 34rem; margin: 3rem auto; background: #fff; padding: 2rem; border-radius: 8px; box-shadow: 0 1px 4px #0002; }}
h1 {{ font-size: 1.4rem; margin-top: 0; }}
label {{ display: block; margin: 1rem 0 .3rem; font-weight: 600; }}
input, select, button {{ font: inherit; padding: .5rem; width: 100%; box-sizing: border-box; }}
button {{ margin-top: 1.2rem; background: #1f6feb; color: #fff; border: 0; border-radius: 4px; cursor: pointer; }}
button.secondary {{ background: #6e7781; }}
.error {{ background: #ffebe9; border: 1px solid #ff8182; padding: .6rem; border-radius: 4px; }}
.code {{ display: block; font: 700 2.2rem ui-monospace, monospace; letter-spacing: .15rem; text-align: center; margin: 1rem 0; }}
</style>
</head>
<body><main>
<h1>{title}</h1>
{content}
</main></body>
</html>
"#
    )
}

/// An error paragraph, or nothing.
pub fn error_note(error: Option<&str>) -> String {
    error.map_or_else(String::new, |e| {
        format!(
            r#"<p class="error" id="error" role="alert">{}</p>"#,
            escape(e)
        )
    })
}

/// `body` as an HTML response that no cache keeps and that loads nothing from elsewhere.
pub fn page(status: StatusCode, body: &str) -> Response {
    let mut response = (status, Html(body.to_owned())).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    // Not `no-referrer`: with it browsers send `Origin: null` on the page's own forms,
    // which the portal's same-origin check must refuse.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert!(error_note(Some("<script>")).contains("&lt;script&gt;"));
        assert!(layout("<b>", "").contains("<h1>&lt;b&gt;</h1>"));
    }
}
