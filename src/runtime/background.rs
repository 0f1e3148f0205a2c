//! The background tasks beside the call path: the CRM worker (timelines), the CRM sync outbox
//! delivery (when configured) and the retention sweep. They share one cancellation token and stop
//! after the records writer has drained, before the database closes.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::crm::DefaultCountry;
use crate::crm::sync::{self, SyncSettings};
use crate::crm::worker::{self, CrmSettings};
use crate::runtime::events::EventBus;
use crate::runtime::retention;
use crate::store::Store;

pub struct Background {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// The default country from the validated config (UA if it somehow is not valid).
pub fn default_country(settings: &Settings) -> DefaultCountry {
    DefaultCountry::parse(&settings.file.crm.default_country).unwrap_or_default()
}

impl Background {
    /// Starts the tasks. Subscribes to `events` before returning, so no call that ends afterwards
    /// is missed by the CRM worker.
    pub fn spawn(store: &Store, settings: &Settings, events: &EventBus) -> Background {
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        let country = default_country(settings);
        let sync = settings
            .file
            .crm_sync
            .as_ref()
            .map(|c| SyncSettings::new(c, settings.data_dir.clone(), country));
        if let Some(sync) = sync.clone() {
            tasks.push(tokio::spawn(sync::run(store.clone(), sync, stop.clone())));
        }
        tasks.push(tokio::spawn(worker::run(
            store.clone(),
            events.subscribe(),
            CrmSettings { country, sync },
            stop.clone(),
        )));
        tasks.push(tokio::spawn(retention::run(
            store.clone(),
            settings.file.retention.clone(),
            settings.data_dir.clone(),
            stop.clone(),
        )));
        Background { stop, tasks }
    }

    /// Stops every task and waits (a few seconds at most) for them to finish what they are doing.
    pub async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}
