//! The service's jobs page (`GET /`): one server-rendered HTML page, no scripts, that reloads
//! itself every five seconds. It shows what `GET /v1/jobs` shows, in a table: each submission's
//! state, batches, per-round progress, time left or taken, and a link to its proof.

use common::Round;

/// Renders the page from the API's job views (newest first) and the management UI's address.
pub fn render(jobs: &[serde_json::Value], management: &str) -> String {
    let mut rows = String::new();
    for job in jobs {
        let id = text(&job["id"]);
        let state = text(&job["state"]);
        let batches: Vec<String> =
            job["batches"].as_array().map(|b| b.iter().map(|n| n.to_string()).collect()).unwrap_or_default();
        let mut rounds = String::new();
        for round in Round::ALL {
            let r = &job["rounds"][round.as_str()];
            if let (Some(done), Some(planned)) = (r["done"].as_u64(), r["planned"].as_u64()) {
                let complete = if done == planned { " complete" } else { "" };
                rounds.push_str(&format!(
                    "<span class=\"round{complete}\" data-round=\"{round}\">{round} {done}/{planned}</span> "
                ));
            }
        }
        let time = match (job["time_left_ms"].as_u64(), job["submitted_ms"].as_u64(), job["finished_ms"].as_u64()) {
            (Some(left), _, _) => format!("about {} left", seconds(left)),
            (None, Some(from), Some(to)) => format!("took {}", seconds(to.saturating_sub(from))),
            _ => String::new(),
        };
        let outcome = match (state.as_str(), job["proof_url"].as_str(), job["error"].as_str()) {
            (_, Some(url), _) => format!("<a href=\"{}\">proof</a>", escape(url)),
            (_, _, Some(error)) => format!("<span class=\"error\">{}</span>", escape(error)),
            _ => String::new(),
        };
        rows.push_str(&format!(
            "<tr data-job=\"{id}\"><td>{id}</td><td class=\"state {state}\">{state}</td><td>{chain}: {batches}</td><td>{txs}</td><td>{rounds}</td><td>{time}</td><td>{outcome}</td></tr>\n",
            id = escape(&id),
            state = escape(&state),
            chain = job["chain_id"],
            batches = batches.join(", "),
            txs = job["tx_count"],
        ));
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=\"7\">No jobs yet: POST a witness to /v1/jobs.</td></tr>\n");
    }
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<title>zkfleet jobs</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: 0.4em 0.8em; border-bottom: 1px solid #ddd; vertical-align: top; }}
td:first-child {{ white-space: nowrap; font-family: monospace; }}
.round {{ display: inline-block; margin: 0 0.3em 0.2em 0; padding: 0 0.4em; border-radius: 3px; background: #eef; font-size: 0.9em; }}
.round.complete {{ background: #dfd; }}
.state.running {{ color: #06c; }} .state.done {{ color: #080; }} .state.failed, .error {{ color: #b00; }} .state.cancelled {{ color: #777; }}
</style>
</head>
<body>
<h1>zkfleet jobs</h1>
<p>Queues and workers: <a href="{management}">RabbitMQ management</a>. Proofs and every action of the API need the bearer token.</p>
<table>
<thead><tr><th>Job</th><th>State</th><th>Chain: batches</th><th>Transactions</th><th>Rounds (tasks done/planned)</th><th>Time</th><th>Outcome</th></tr></thead>
<tbody>
{rows}</tbody>
</table>
</body>
</html>
"#,
        management = escape(management),
    )
}

fn text(v: &serde_json::Value) -> String {
    v.as_str().map(String::from).unwrap_or_else(|| v.to_string())
}

fn seconds(ms: u64) -> String {
    crate::job_status::human(std::time::Duration::from_millis(ms))
}

/// Escapes text for HTML content and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_jobs_is_escaped() {
        let job = serde_json::json!({ "id": "b1-1", "state": "failed", "error": "<script>alert(1)</script>", "batches": [1] });
        let page = render(&[job], "http://rabbit:15672");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!page.contains("<script>"));
    }
}
