//! What makes a poll or a vote valid, when a vote may change, and who may see the tally.
//! Pure functions: the store calls the vote rules inside its write, with the poll's state
//! and the caller's current vote read there.

use std::collections::HashSet;

use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use crate::{
    domain::{
        Time,
        poll::{PollOption, PollRecord, PollSettings, PollState, ResultsVisibility, Tally},
    },
    error::{Error, Reason, Result},
    validate::Violations,
};

/// Longest question, in characters.
pub const MAX_QUESTION_CHARS: usize = 500;
/// Longest option, in characters.
pub const MAX_OPTION_CHARS: usize = 200;
/// Fewest options a poll is created with.
pub const MIN_OPTIONS: usize = 2;
/// Most options a poll may ever have (at creation and after additions).
pub const MAX_OPTIONS: usize = 20;

/// An option's text as compared for uniqueness: Unicode NFKC, lowercased, trimmed, inner
/// whitespace collapsed — so "Yes", " yes " and "ＹＥＳ" are the same option.
pub fn option_key(text: &str) -> String {
    text.nfkc()
        .collect::<String>()
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks a new poll, recording every problem in `v`; returns the trimmed question and
/// options to store.
pub fn check_new_poll(
    v: &mut Violations,
    question: &str,
    options: &[String],
    settings: &PollSettings,
    now: Time,
) -> (String, Vec<String>) {
    let question = question.trim();
    v.text("question", question, 1, MAX_QUESTION_CHARS);
    if options.len() < MIN_OPTIONS || options.len() > MAX_OPTIONS {
        v.add("options", format!("{MIN_OPTIONS} to {MAX_OPTIONS} options"));
    }
    let mut seen = HashSet::new();
    let mut kept = Vec::with_capacity(options.len());
    for (i, option) in options.iter().enumerate() {
        let field = format!("options[{i}]");
        let option = option.trim();
        v.text(&field, option, 1, MAX_OPTION_CHARS);
        if !option.is_empty() && !seen.insert(option_key(option)) {
            v.add(&field, "the same as an earlier option");
        }
        kept.push(option.to_owned());
    }
    if settings.multiple_choice
        && let Some(max) = settings.max_selections
        && (max < 2 || usize::try_from(max).unwrap_or(usize::MAX) > options.len())
    {
        v.add(
            "settings.max_selections",
            "from 2 to the number of options (0 for no limit)",
        );
    }
    if settings.anonymous && settings.allow_vote_changes {
        // The server keeps no anonymous voter's picks, so it could not undo one.
        v.add(
            "settings.allow_vote_changes",
            "anonymous polls cannot allow changing a vote",
        );
    }
    if settings.close_time.is_some_and(|close| close <= now) {
        v.add("settings.close_time", "must be in the future");
    }
    (question.to_owned(), kept)
}

/// Checks a new option against the poll's current ones.
pub fn check_new_option(v: &mut Violations, text: &str, current: &[PollOption]) -> String {
    let text = text.trim();
    v.text("text", text, 1, MAX_OPTION_CHARS);
    if current.len() >= MAX_OPTIONS {
        v.add("text", format!("a poll has at most {MAX_OPTIONS} options"));
    }
    let key = option_key(text);
    if !text.is_empty() && current.iter().any(|o| option_key(&o.text) == key) {
        v.add("text", "the same as an existing option");
    }
    text.to_owned()
}

/// Checks a selection against the poll's options and settings; returns the option ids.
pub fn check_selection(
    v: &mut Violations,
    picked: &[String],
    options: &[PollOption],
    settings: &PollSettings,
) -> Vec<Uuid> {
    let limit = settings.selection_limit(options.len());
    if picked.is_empty() {
        v.add(
            "option_ids",
            "pick at least one option (RetractVote withdraws a vote)",
        );
    } else if picked.len() > limit {
        v.add("option_ids", format!("at most {limit} option(s)"));
    }
    let mut ids = Vec::with_capacity(picked.len());
    for (i, raw) in picked.iter().enumerate() {
        let field = format!("option_ids[{i}]");
        let Some(id) = v.id(&field, raw) else {
            continue;
        };
        if !options.iter().any(|o| o.id == id) {
            v.add(&field, "not an option of this poll");
        } else if ids.contains(&id) {
            v.add(&field, "picked twice");
        } else {
            ids.push(id);
        }
    }
    ids
}

/// Ok while the poll takes changes: `NOT_FOUND` once deleted, `POLL_CLOSED` once closed.
fn still_open(state: PollState) -> Result<()> {
    match state {
        PollState::Deleted => Err(Error::NotFound("poll")),
        PollState::Closed => Err(Error::FailedPrecondition {
            reason: Reason::PollClosed,
            message: "the poll is closed",
        }),
        PollState::Open => Ok(()),
    }
}

/// Whether a member who has (`voted`) or has not voted may cast or retract a vote now.
pub fn may_change_vote(state: PollState, settings: &PollSettings, voted: bool) -> Result<()> {
    still_open(state)?;
    if voted && !settings.allow_vote_changes {
        return Err(Error::FailedPrecondition {
            reason: Reason::VoteFinal,
            message: "this poll does not allow changing a vote",
        });
    }
    Ok(())
}

/// Whether `user` may add an option to `poll` now (a member: checked before).
pub fn may_add_option(poll: &PollRecord, user: Uuid) -> Result<()> {
    still_open(poll.state)?;
    if poll.creator != user && !poll.settings.members_can_add_options {
        return Err(Error::PermissionDenied {
            reason: Reason::InsufficientRole,
            message: "only the poll's creator can add options to it",
        });
    }
    Ok(())
}

/// Whether a member sees the tally now.
pub fn sees_results(settings: &PollSettings, state: PollState, voted: bool) -> bool {
    match (state, settings.results_visibility) {
        (PollState::Deleted, _) => false,
        (PollState::Closed, _) | (_, ResultsVisibility::Always) => true,
        (PollState::Open, ResultsVisibility::AfterVoting) => voted,
        (PollState::Open, ResultsVisibility::AfterClose) => false,
    }
}

/// Counts `votes` (each voter's picks) for `options`, in option order (a recount, to
/// check the stored counters against).
pub fn tally<'a>(options: &[PollOption], votes: impl IntoIterator<Item = &'a [Uuid]>) -> Tally {
    let mut counts: Vec<(Uuid, u32)> = options.iter().map(|o| (o.id, 0)).collect();
    let mut total_voters = 0u32;
    for picks in votes {
        if picks.is_empty() {
            continue;
        }
        total_voters += 1;
        for pick in picks {
            if let Some((_, count)) = counts.iter_mut().find(|(id, _)| id == pick) {
                *count += 1;
            }
        }
    }
    Tally {
        counts,
        total_voters,
        // A recount is not a change: it has no place in the poll's versions.
        version: 0,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn options(n: usize) -> Vec<PollOption> {
        (0..n)
            .map(|i| PollOption {
                id: Uuid::from_u128(i as u128 + 1),
                text: format!("option {i}"),
                added_by: Uuid::nil(),
            })
            .collect()
    }

    fn fields(v: Violations) -> Vec<String> {
        match v.finish() {
            Err(Error::InvalidArgument(list)) => list.into_iter().map(|f| f.field).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn options_are_unique_after_normalization() {
        assert_eq!(option_key(" Yes  please "), option_key("ＹＥＳ please"));
        assert_ne!(option_key("yes"), option_key("no"));
        let mut v = Violations::new();
        let picked = ["Yes".to_owned(), " yes ".to_owned(), "No".to_owned()];
        check_new_poll(
            &mut v,
            "Lunch?",
            &picked,
            &PollSettings::default(),
            chrono::Utc::now(),
        );
        assert_eq!(fields(v), ["options[1]"]);
    }

    #[test]
    fn a_new_poll_reports_every_problem_at_once() {
        let mut v = Violations::new();
        let settings = PollSettings {
            multiple_choice: true,
            max_selections: Some(5),
            anonymous: true,
            allow_vote_changes: true,
            close_time: Some(chrono::Utc::now() - Duration::minutes(1)),
            ..Default::default()
        };
        let one = ["only".to_owned()];
        check_new_poll(&mut v, " ", &one, &settings, chrono::Utc::now());
        assert_eq!(
            fields(v),
            [
                "question",
                "options",
                "settings.max_selections",
                "settings.allow_vote_changes",
                "settings.close_time"
            ]
        );
        let mut v = Violations::new();
        let long = ["x".repeat(MAX_OPTION_CHARS + 1), "ok".into()];
        check_new_poll(
            &mut v,
            &"q".repeat(MAX_QUESTION_CHARS + 1),
            &long,
            &PollSettings::default(),
            chrono::Utc::now(),
        );
        assert_eq!(fields(v), ["question", "options[0]"]);
    }

    #[test]
    fn selections_respect_the_options_and_the_limit() {
        let opts = options(4);
        let id = |i: usize| opts[i].id.to_string();
        let single = PollSettings::default();
        let mut v = Violations::new();
        assert_eq!(
            check_selection(&mut v, &[id(0)], &opts, &single),
            [opts[0].id]
        );
        assert!(fields(v).is_empty());
        let mut v = Violations::new();
        check_selection(&mut v, &[id(0), id(1)], &opts, &single);
        assert_eq!(fields(v), ["option_ids"]);
        let multi = PollSettings {
            multiple_choice: true,
            max_selections: Some(2),
            ..Default::default()
        };
        let mut v = Violations::new();
        let unknown = Uuid::from_u128(99).to_string();
        check_selection(&mut v, &[id(0), id(0)], &opts, &multi);
        assert_eq!(fields(v), ["option_ids[1]"]);
        let mut v = Violations::new();
        check_selection(&mut v, &[unknown, "nope".into()], &opts, &multi);
        assert_eq!(fields(v), ["option_ids[0]", "option_ids[1]"]);
        let mut v = Violations::new();
        check_selection(&mut v, &[id(0), id(1), id(2)], &opts, &multi);
        assert_eq!(fields(v), ["option_ids"]);
        let unlimited = PollSettings {
            multiple_choice: true,
            ..Default::default()
        };
        assert_eq!(unlimited.selection_limit(4), 4);
    }

    #[test]
    fn votes_change_only_while_open_and_when_allowed() {
        let fixed = PollSettings::default();
        let changeable = PollSettings {
            allow_vote_changes: true,
            ..Default::default()
        };
        assert!(may_change_vote(PollState::Open, &fixed, false).is_ok());
        assert!(matches!(
            may_change_vote(PollState::Open, &fixed, true),
            Err(Error::FailedPrecondition {
                reason: Reason::VoteFinal,
                ..
            })
        ));
        assert!(may_change_vote(PollState::Open, &changeable, true).is_ok());
        assert!(matches!(
            may_change_vote(PollState::Closed, &changeable, false),
            Err(Error::FailedPrecondition {
                reason: Reason::PollClosed,
                ..
            })
        ));
        assert!(matches!(
            may_change_vote(PollState::Deleted, &changeable, false),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn results_show_as_the_poll_says() {
        let with = |results_visibility| PollSettings {
            results_visibility,
            ..Default::default()
        };
        let always = with(ResultsVisibility::Always);
        let after_voting = with(ResultsVisibility::AfterVoting);
        let after_close = with(ResultsVisibility::AfterClose);
        assert!(sees_results(&always, PollState::Open, false));
        assert!(!sees_results(&after_voting, PollState::Open, false));
        assert!(sees_results(&after_voting, PollState::Open, true));
        assert!(!sees_results(&after_close, PollState::Open, true));
        assert!(sees_results(&after_close, PollState::Closed, false));
        assert!(!sees_results(&always, PollState::Deleted, true));
    }

    #[test]
    fn the_tally_counts_voters_once_and_options_per_pick() {
        let opts = options(3);
        let (a, b, c) = (opts[0].id, opts[1].id, opts[2].id);
        let votes: Vec<Vec<Uuid>> = vec![vec![a], vec![a, b], vec![], vec![c, a]];
        let tally = tally(&opts, votes.iter().map(Vec::as_slice));
        assert_eq!(tally.counts, [(a, 3), (b, 1), (c, 1)]);
        assert_eq!(tally.total_voters, 3);
    }
}
