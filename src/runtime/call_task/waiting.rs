//! A caller waiting in a queue: the consent prompt, hold music on a loop, and position
//! announcements between two runs of the music.

use super::*;

impl Task {
    /// The SIP task put the caller in a queue.
    pub(super) fn queued(&mut self, hold_music: String, announce_recording: Option<String>) {
        self.hold = Some(Some(hold_music));
        self.stop_audio();
        match announce_recording {
            Some(notice) => self.load(
                ivr_io::PlayItems::Files(vec![notice]),
                PlayOwner::QueueNotice,
                false,
            ),
            None => self.play_hold_music(),
        }
    }

    /// "You are number N in the queue", unless a queue prompt is playing (never cut the consent
    /// prompt short); the hold music resumes after it.
    pub(super) fn announce_position(&mut self, position: usize) {
        let busy = self.playing == Some(PlayOwner::QueueNotice)
            || matches!(self.loading, Some((_, PlayOwner::QueueNotice, _)));
        let Some(number) = number_prompts(position) else {
            return;
        };
        if self.hold.is_none() || busy {
            return;
        }
        let mut files = vec!["you-are-number.wav".to_string()];
        files.extend(number);
        files.push("in-the-queue.wav".into());
        self.stop_audio();
        self.load(
            ivr_io::PlayItems::Files(files),
            PlayOwner::QueueNotice,
            false,
        );
    }

    /// Starts (or restarts, when it ended) the hold music while the caller waits.
    pub(super) fn play_hold_music(&mut self) {
        if let Some(Some(music)) = &self.hold {
            let music = music.clone();
            self.load(
                ivr_io::PlayItems::Files(vec![music]),
                PlayOwner::HoldMusic,
                false,
            );
        }
    }

    /// A missing or broken hold file: the caller waits in silence (never a tight reload loop).
    pub(super) fn hold_music_failed(&mut self, error: &str) {
        tracing::warn!(%error, "hold music cannot be played; the caller waits in silence");
        if let Some(hold) = self.hold.as_mut() {
            *hold = None;
        }
    }
}

/// The shipped number prompts (`digits/N.wav`): 1–20 as one file, 21–99 as tens and units.
/// Positions past 99 are not announced.
fn number_prompts(n: usize) -> Option<Vec<String>> {
    let file = |n: usize| format!("digits/{n}.wav");
    match n {
        1..=20 => Some(vec![file(n)]),
        21..=99 if n.is_multiple_of(10) => Some(vec![file(n)]),
        21..=99 => Some(vec![file(n - n % 10), file(n % 10)]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::number_prompts;

    #[test]
    fn positions_are_said_with_the_shipped_digit_files() {
        assert_eq!(number_prompts(2), Some(vec!["digits/2.wav".to_string()]));
        assert_eq!(number_prompts(20), Some(vec!["digits/20.wav".to_string()]));
        assert_eq!(
            number_prompts(47),
            Some(vec![
                "digits/40.wav".to_string(),
                "digits/7.wav".to_string()
            ])
        );
        assert_eq!(number_prompts(90), Some(vec!["digits/90.wav".to_string()]));
        assert_eq!(number_prompts(0), None);
        assert_eq!(number_prompts(100), None);
    }
}
