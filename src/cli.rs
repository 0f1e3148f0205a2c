//! Commands that talk to a running server through its HTTP API (an admin's or manager's
//! token): `openline broadcast status ID [--watch]`.
//!
//! The watch polls the campaign once a second rather than following the event WebSocket: the
//! numbers come from the database either way, and a poll survives a server restart.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::time::Duration;

/// Where the API is and who asks.
#[derive(Debug, Clone)]
pub struct ApiTarget {
    /// `http://127.0.0.1:8080`
    pub base: String,
    pub token: String,
}

/// Prints a campaign's progress; with `watch`, as a progress bar until it is over. The last
/// state is printed as text in both cases (what scripts and logs read).
pub async fn broadcast_status(target: &ApiTarget, id: &str, watch: bool) -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let url = format!(
        "{}/api/v1/broadcasts/{id}",
        target.base.trim_end_matches('/')
    );
    let fetch = || async {
        let response = client
            .get(&url)
            .bearer_auth(&target.token)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| format!("{url}: {e}"))?;
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            let message = json["error"]["message"].as_str().unwrap_or("no details");
            return Err(format!("{url}: {status}: {message}"));
        }
        Ok(json)
    };
    let mut campaign = fetch().await?;
    if watch {
        let bar = ProgressBar::new(total(&campaign));
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} {msg}")
                .map_err(|e| e.to_string())?
                .progress_chars("=> "),
        );
        bar.set_prefix(campaign["name"].as_str().unwrap_or("broadcast").to_string());
        while !is_over(&campaign) {
            bar.set_length(total(&campaign));
            bar.set_position(done(&campaign));
            bar.set_message(progress_line(&campaign));
            tokio::time::sleep(Duration::from_secs(1)).await;
            // A restart or a moment of trouble does not end the watch; a minute of it does.
            let mut failures = 0;
            campaign = loop {
                match fetch().await {
                    Ok(c) => break c,
                    Err(e) if failures < 60 => {
                        failures += 1;
                        bar.set_message(format!("retrying: {e}"));
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(e) => return Err(e),
                }
            };
        }
        bar.finish_and_clear();
    }
    println!("{}", summary(&campaign));
    Ok(())
}

fn total(campaign: &Value) -> u64 {
    campaign["progress"]["total"].as_u64().unwrap_or(0)
}

fn done(campaign: &Value) -> u64 {
    campaign["progress"]["done"].as_u64().unwrap_or(0)
}

fn is_over(campaign: &Value) -> bool {
    matches!(
        campaign["state"].as_str(),
        Some("completed" | "cancelled") | None
    )
}

/// `in flight 3 · human 12 · busy 2 · ETA 4m10s`
pub fn progress_line(campaign: &Value) -> String {
    let progress = &campaign["progress"];
    let mut parts = vec![format!(
        "in flight {}",
        progress["in_flight"]
            .as_i64()
            .or_else(|| progress["calling"].as_i64())
            .unwrap_or(0)
    )];
    if let Some(outcomes) = progress["outcomes"].as_object() {
        parts.extend(
            outcomes
                .iter()
                .map(|(outcome, n)| format!("{outcome} {}", n.as_i64().unwrap_or(0))),
        );
    }
    if let Some(eta) = campaign["eta_secs"].as_u64() {
        parts.push(format!("ETA {}m{:02}s", eta / 60, eta % 60));
    }
    parts.join(" · ")
}

/// `Order ready: running, 40/300 done · in flight 3 · human 12 …`
pub fn summary(campaign: &Value) -> String {
    format!(
        "{}: {}, {}/{} done · {}",
        campaign["name"].as_str().unwrap_or("?"),
        campaign["state"].as_str().unwrap_or("?"),
        done(campaign),
        total(campaign),
        progress_line(campaign)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_what_a_manager_asks() {
        let campaign = serde_json::json!({
            "name": "Order ready",
            "state": "running",
            "eta_secs": 250,
            "progress": { "total": 300, "done": 40, "calling": 9, "in_flight": 3,
                          "outcomes": { "busy": 2, "human": 12 } },
        });
        assert_eq!(
            summary(&campaign),
            "Order ready: running, 40/300 done · in flight 3 · busy 2 · human 12 · ETA 4m10s"
        );
        assert!(!is_over(&campaign));
        assert!(is_over(&serde_json::json!({ "state": "completed" })));
    }
}
