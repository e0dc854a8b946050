//! Resolve- and unresolve-all rules, applied in chunks (docs/architecture.md §3).
//!
//! A rule event ("entries matching F up to id N") is recorded as pending
//! in the transaction that applies it; then each chunk, its own
//! transaction, examines the next entries below the rule's cursor and
//! stores the new cursor with the changes, so one rule over a million
//! entries neither blocks other events for long nor breaks exactly-once.
//!
//! Exactness: a rule must act on the state as of its own place in the
//! stream. Entries above `upto` are never touched. A later single-entry
//! resolve or unresolve of an entry the rule has not reached yet first lets
//! the rule decide that entry (and remembers it in `RULE_DONE`), then
//! applies. A later rule first finishes every earlier one.

use crate::apply::Tx;
use crate::record::{self, EntryRecord};
use crate::tables::*;
use crate::{Projection, ProjectionError};
use proto::event::{Envelope, Rule};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

/// Entries examined per chunk.
pub const CHUNK: usize = 5000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingRule {
    pub rule: Rule,
    pub resolve: bool,
    pub by: String,
    pub at: i64,
    /// The highest entry id not yet examined.
    pub cursor: u64,
}

impl Tx<'_> {
    fn pending(&self) -> Result<Vec<(u64, PendingRule)>, ProjectionError> {
        let mut out = Vec::new();
        for row in self.pending_rules.iter()? {
            let (k, v) = row?;
            out.push((k.value(), record::decode("pending_rules", v.value())?));
        }
        Ok(out)
    }

    pub(crate) fn start_rule(
        &mut self,
        seq: u64,
        env: &Envelope,
        rule: Rule,
        resolve: bool,
    ) -> Result<(), ProjectionError> {
        while self.rule_chunk(usize::MAX)? {}
        let p = PendingRule {
            cursor: rule.upto,
            rule,
            resolve,
            by: env.by.label(),
            at: env.at,
        };
        self.pending_rules
            .insert(seq, record::encode(&p).as_slice())?;
        Ok(())
    }

    /// Lets every pending rule decide entry `id` before a later event
    /// changes it.
    pub(crate) fn rules_before(&mut self, id: u64) -> Result<(), ProjectionError> {
        for (rule_seq, p) in self.pending()? {
            if id <= p.cursor && self.rule_done.get((rule_seq, id))?.is_none() {
                self.decide(rule_seq, &p, id)?;
                self.rule_done.insert((rule_seq, id), ())?;
            }
        }
        Ok(())
    }

    fn decide(&mut self, rule_seq: u64, p: &PendingRule, id: u64) -> Result<(), ProjectionError> {
        let Some(e): Option<EntryRecord> = self.entry(id)? else {
            return Ok(());
        };
        let f = &p.rule.filter;
        if f.matches(
            e.level,
            e.key_id.as_deref(),
            &e.message,
            e.source.as_deref(),
            &e.group,
        ) {
            self.set_resolved(rule_seq, id, p.resolve, &p.by, p.at)?;
        }
        Ok(())
    }

    /// Advances the oldest pending rule by up to `limit` entries. Answers
    /// whether any rule is still pending.
    pub(crate) fn rule_chunk(&mut self, limit: usize) -> Result<bool, ProjectionError> {
        let Some((rule_seq, mut p)) = self.pending()?.into_iter().next() else {
            return Ok(false);
        };
        // A group's rule reads only the group's entries.
        let ids: Vec<u64> = match p.rule.filter.group.as_deref() {
            Some(g) => self
                .group_entries
                .range(group_members(group_num(g), p.cursor))?
                .rev()
                .take(limit)
                .map(|r| r.map(|(k, _)| k.value().1))
                .collect::<Result<_, _>>()?,
            None => self
                .entries
                .range(..=p.cursor)?
                .rev()
                .take(limit)
                .map(|r| r.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()?,
        };
        for &id in &ids {
            if self.rule_done.get((rule_seq, id))?.is_none() {
                self.decide(rule_seq, &p, id)?;
            }
        }
        match ids.last() {
            Some(&last) if ids.len() == limit && last > 1 => {
                p.cursor = last - 1;
                self.pending_rules
                    .insert(rule_seq, record::encode(&p).as_slice())?;
            }
            _ => {
                self.pending_rules.remove(rule_seq)?;
                self.rule_done
                    .retain_in((rule_seq, 0)..=(rule_seq, u64::MAX), |_, _| false)?;
            }
        }
        Ok(!self.pending_rules.is_empty()?)
    }
}

impl Projection {
    /// Applies one chunk of pending rules in its own transaction; answers
    /// whether rules are still pending.
    pub fn apply_rule_chunk(&self, limit: usize) -> Result<bool, ProjectionError> {
        let txn = self.db()?.begin_write()?;
        let more = {
            let mut tx = Tx::open(&txn)?;
            let more = tx.rule_chunk(limit)?;
            tx.finish(&txn)?;
            more
        };
        txn.commit()?;
        Ok(more)
    }

    /// The sequence of the oldest rule still being applied, if any.
    pub fn oldest_pending_rule(&self) -> Result<Option<u64>, ProjectionError> {
        let txn = self.db()?.begin_read()?;
        let t = txn.open_table(PENDING_RULES)?;
        Ok(t.first()?.map(|(k, _)| k.value()))
    }

    /// The highest sequence whose effects are complete: `last_applied`, or
    /// just below the oldest rule still being applied.
    pub fn settled(&self) -> Result<u64, ProjectionError> {
        let last = self.last_applied()?;
        Ok(match self.oldest_pending_rule()? {
            Some(rule) => last.min(rule - 1),
            None => last,
        })
    }
}
