//! What the IVR engine asks of a call: prompts, recordings, webhooks, queues, dialling, hang-up;
//! and the path the caller took, reported to the SIP task as the engine moves.

use super::{CallNotice, PlayOwner, Task};
use crate::ivr::{Command as IvrCommand, Event as IvrEvent};
use crate::runtime::ivr_io;
use std::time::Instant;

impl Task {
    pub(super) fn engine_event(&mut self, event: IvrEvent) {
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        let commands = engine.step(Instant::now(), self.setup.clock.timestamp(), event);
        self.execute(commands);
    }

    /// Carries out the engine's commands.
    pub(super) fn execute(&mut self, commands: Vec<IvrCommand>) {
        for command in commands {
            match command {
                IvrCommand::Play { prompts, barge_in } => {
                    self.stop_audio();
                    self.load(ivr_io::PlayItems::Ivr(prompts), PlayOwner::Engine, barge_in);
                }
                IvrCommand::StopPlayback => self.stop_audio(),
                IvrCommand::Record {
                    max_length,
                    beep,
                    finish_digit,
                } => {
                    self.stop_audio();
                    let request = ivr_io::RecordRequest {
                        max_length,
                        finish_digit,
                    };
                    if beep {
                        self.pending_record = Some(request);
                        self.load(
                            ivr_io::PlayItems::Files(vec!["beep.wav".into()]),
                            PlayOwner::Beep,
                            false,
                        );
                    } else {
                        self.start_voicemail(request);
                    }
                }
                IvrCommand::StopRecording => self.finish_voicemail(true),
                IvrCommand::Webhook { url, body, timeout } => {
                    let http = self.setup.http.clone();
                    self.webhook = Some(tokio::spawn(ivr_io::webhook(http, url, body, timeout)));
                }
                IvrCommand::Enqueue {
                    queue,
                    skills,
                    priority,
                } => {
                    self.stop_audio();
                    self.notify(CallNotice::Enqueue {
                        leg: self.setup_leg,
                        queue,
                        request: crate::queue::JoinRequest {
                            priority,
                            skills: skills.into_iter().collect(),
                            ..Default::default()
                        },
                    });
                }
                IvrCommand::Dial {
                    target,
                    timeout,
                    literal,
                } => self.notify(CallNotice::Dial {
                    leg: self.setup_leg,
                    target,
                    timeout,
                    may_use_trunk: literal,
                }),
                IvrCommand::SetRating(rating) => self.notify(CallNotice::Rating {
                    leg: self.setup_leg,
                    rating,
                }),
                IvrCommand::Log { message } => tracing::warn!(%message, "ivr"),
                IvrCommand::Hangup { disposition } => {
                    self.report_path();
                    self.disposition = Some(disposition.clone());
                    self.notify(CallNotice::Hangup {
                        leg: self.setup_leg,
                        disposition,
                    });
                }
            }
        }
        self.report_path();
    }

    /// Sends the path to the SIP task when the engine moved or a digit was pressed.
    pub(super) fn report_path(&mut self) {
        let Some(engine) = self.engine.as_ref() else {
            return;
        };
        let path = engine.path();
        let digits = path.last().map_or(0, |s| s.digits.len());
        if (path.len(), digits) == self.path_reported {
            return;
        }
        self.path_reported = (path.len(), digits);
        let json = serde_json::Value::Array(
            path.iter()
                .map(|s| {
                    serde_json::json!({
                        "flow": s.flow.to_string(),
                        "node": s.node.to_string(),
                        "digits": s.digits,
                    })
                })
                .collect(),
        );
        self.notify(CallNotice::Path {
            leg: self.setup_leg,
            flow: engine.flow().to_string(),
            path: json,
        });
    }
}
