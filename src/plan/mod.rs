//! The plan file (docs/plan-format.md): its shape ([`Plan`]), the wire format of its
//! changes (`change.rs`), canonical JSON ([`canonical`]), its digest
//! (`digest.rs`) and reading it back (`load.rs`).
//!
//! A plan read from disk is untrusted until [`load()`] has checked its
//! format, shape and digest. The digest covers everything but `digest`,
//! `author_signature` and `approvals`, so that signing and approving never
//! change what was approved (and a plan without an author signature hashes
//! exactly as plans always did).

pub mod canonical;
mod change;
mod digest;
mod fast_json;
#[cfg(test)]
mod hostile_tests;
mod load;
mod parallel;
#[cfg(test)]
mod revert_tests;
mod spool;
#[cfg(test)]
mod spool_tests;
mod stream;
mod tenant_id;
#[cfg(test)]
mod tests;
mod text;

use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sync::{Change, Context, Finding, Op, SyncOptions, SyncResult};

pub use digest::{changes_digest, digest_of, digest_of_plan};
pub(crate) use fast_json::{surely_fit, surely_fit_members, MAX_DEPTH as SURELY_FIT_DEPTH};
pub use load::{
    load, load_stdin, max_plan_bytes, parse, read_bytes, read_bytes_of, read_capped, Loaded,
};
pub use parallel::{ChangeBatch, Watch};
pub use spool::{ChangeSpool, SpoolTail, Spooled};
pub use stream::{
    check_for_approval, load_without_changes, parse_for_approval, parse_without_changes,
    split_plan_file, start_reading, CheckedFile, Reading, Scanned, SplitFile,
};
pub use tenant_id::{is_valid_tenant_id, TENANT_ID_RULE};
pub use text::{
    lean_of, load_lean, load_lean_stdin, ChangedSinceChecked, ChangesInFile, ChangesText, Lean,
};

pub const FORMAT: &str = "sync-access/plan/v1";

/// Plans larger than this are refused before parsing (a hostile or broken
/// file must not exhaust memory). A million bindings take about 400 MiB.
pub const MAX_PLAN_BYTES: u64 = 2 << 30;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub format: String,
    pub tool_version: String,
    pub created_at: String,
    pub created_by: String,
    pub source: Source,
    pub tenant: String,
    pub options: Options,
    /// A revert plan (docs/revert.md): the digest of the applied plan it
    /// undoes. Absent in every other plan, which hashes as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverts: Option<String>,
    pub summary: Summary,
    pub changes: Vec<Change>,
    pub skipped: Vec<Finding>,
    pub conflicts: Vec<Finding>,
    /// Facts for the review that the changes do not carry (role
    /// permissions, user types); absent when there are none.
    #[serde(default, skip_serializing_if = "Context::is_empty")]
    pub context: Context,
    pub applyable: bool,
    pub digest: String,
    /// The author's SSH signature over `{created_at, created_by, digest}`
    /// (see `signing`); outside what the digest covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_signature: Option<String>,
    #[serde(default)]
    pub approvals: Vec<Approval>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub backend: String,
    /// The URL with any password removed.
    pub database: String,
    pub identity: String,
}

/// The sync options besides the tenant, so that `apply` re-derives exactly.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    pub create_tenant: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_name: Option<String>,
    pub skip_conflicts: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub create_tenant: usize,
    pub add_role: usize,
    pub add_group: usize,
    pub add_membership: usize,
    pub add_binding: usize,
    // A revert plan's removals; absent when 0, so that other plans' files
    // and digests are unchanged.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub remove_binding: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub remove_membership: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub remove_group: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub remove_role: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub remove_tenant: usize,
    pub present: usize,
    pub skipped: usize,
    pub conflicts: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Summary {
    pub fn of(result: &SyncResult) -> Self {
        Summary::counting(result, |op| result.count(op))
    }

    /// The summary of `result`'s findings with `changes(op)` changes of
    /// each op (the changes may be elsewhere: a spool).
    pub fn counting(result: &SyncResult, changes: impl Fn(Op) -> usize) -> Self {
        Summary {
            create_tenant: changes(Op::CreateTenant),
            add_role: changes(Op::AddRole),
            add_group: changes(Op::AddGroup),
            add_membership: changes(Op::AddMembership),
            add_binding: changes(Op::AddBinding),
            remove_binding: changes(Op::RemoveBinding),
            remove_membership: changes(Op::RemoveMembership),
            remove_group: changes(Op::RemoveGroup),
            remove_role: changes(Op::RemoveRole),
            remove_tenant: changes(Op::RemoveTenant),
            present: result.present_total(),
            skipped: result.skipped.len(),
            conflicts: result.conflicts.len(),
        }
    }

    pub fn changes(&self) -> usize {
        Op::ALL.iter().map(|op| self.count(*op)).sum()
    }

    pub fn count(&self, op: Op) -> usize {
        match op {
            Op::CreateTenant => self.create_tenant,
            Op::AddRole => self.add_role,
            Op::AddGroup => self.add_group,
            Op::AddMembership => self.add_membership,
            Op::AddBinding => self.add_binding,
            Op::RemoveBinding => self.remove_binding,
            Op::RemoveMembership => self.remove_membership,
            Op::RemoveGroup => self.remove_group,
            Op::RemoveRole => self.remove_role,
            Op::RemoveTenant => self.remove_tenant,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub by: String,
    pub at: String,
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// Who and when, from the environment, so that commands stay testable.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub created_at: String,
    pub created_by: String,
}

impl Plan {
    /// Builds a plan from a sync result and seals it with its digest.
    pub fn new(
        result: SyncResult,
        options: &SyncOptions,
        source: Source,
        provenance: Provenance,
    ) -> Self {
        let summary = Summary::of(&result);
        let mut plan = Plan::unsealed(result, summary, options, source, provenance);
        plan.digest = digest_of_plan(&plan);
        plan
    }

    /// Builds the plan whose changes are `spooled` and the rest `rest`
    /// (which holds no changes), a revert plan of the plan with digest
    /// `reverts` if given, not yet sealed: its digest comes from the spool
    /// (`Spooled::seal_and_write`, which also writes the changes, or
    /// `Spooled::digest`). The plan holds no changes.
    pub fn spooled(
        rest: SyncResult,
        spooled: &Spooled,
        options: &SyncOptions,
        reverts: Option<&str>,
        source: Source,
        provenance: Provenance,
    ) -> Self {
        assert!(rest.changes.is_empty(), "the changes are in the spool");
        let summary = Summary::counting(&rest, |op| spooled.count(op));
        let mut plan = Plan::unsealed(rest, summary, options, source, provenance);
        plan.reverts = reverts.map(str::to_string);
        plan
    }

    fn unsealed(
        result: SyncResult,
        summary: Summary,
        options: &SyncOptions,
        source: Source,
        provenance: Provenance,
    ) -> Self {
        Plan {
            format: FORMAT.to_string(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            created_at: provenance.created_at,
            created_by: provenance.created_by,
            source,
            tenant: options.tenant.clone(),
            options: Options {
                create_tenant: options.create_tenant,
                tenant_name: options.tenant_name.clone(),
                skip_conflicts: options.skip_conflicts,
            },
            reverts: None,
            summary,
            applyable: result.conflicts.is_empty(),
            changes: result.changes,
            skipped: result.skipped,
            conflicts: result.conflicts,
            context: result.context,
            digest: String::new(),
            author_signature: None,
            approvals: Vec::new(),
        }
    }

    /// Builds a revert plan of the plan with digest `reverts` (its removals
    /// in `result`) and seals it with its digest.
    pub fn revert(
        result: SyncResult,
        tenant: &str,
        skip_conflicts: bool,
        reverts: &str,
        source: Source,
        provenance: Provenance,
    ) -> Self {
        let mut options = SyncOptions::new(tenant);
        options.skip_conflicts = skip_conflicts;
        let mut plan = Plan::new(result, &options, source, provenance);
        plan.reverts = Some(reverts.to_string());
        plan.digest = digest_of_plan(&plan);
        plan
    }

    pub fn sync_options(&self) -> SyncOptions {
        SyncOptions {
            tenant: self.tenant.clone(),
            create_tenant: self.options.create_tenant,
            tenant_name: self.options.tenant_name.clone(),
            skip_conflicts: self.options.skip_conflicts,
        }
    }

    /// Writes the plan file: pretty JSON (each document on one line, in its
    /// canonical form) and a final newline, streamed.
    pub fn write_pretty(&self, out: impl std::io::Write) -> std::io::Result<()> {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
        serde_json::to_writer_pretty(&mut out, self).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        out.flush()
    }

    /// The plan file's bytes (small plans and tests).
    pub fn to_pretty_json(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.write_pretty(&mut bytes)
            .expect("writing to a Vec cannot fail");
        bytes
    }

    /// The approvals whose digest is this plan's.
    pub fn matching_approvals(&self) -> impl Iterator<Item = &Approval> {
        self.approvals
            .iter()
            .filter(move |a| a.digest == self.digest)
    }
}

/// A plan's changes in the plan's order, one at a time: its own, or those
/// of a spool when the plan does not hold them (`plan`).
pub trait Changes {
    /// Gives each change to `f`, until `f` says `false`.
    fn each_change(&self, f: &mut dyn FnMut(&Change) -> bool) -> std::io::Result<()>;

    /// Gives each change of `op` to `f`, until `f` says `false`. A reader
    /// that knows where they are ([`ChangesText`]) reads only those.
    fn each_change_of(&self, op: Op, f: &mut dyn FnMut(&Change) -> bool) -> std::io::Result<()> {
        self.each_change(&mut |change| change.op() != op || f(change))
    }

    /// [`Changes::each_change`] with where each change is, for
    /// [`Changes::changes_at`]: by default, its rank.
    fn each_change_at(&self, f: &mut dyn FnMut(usize, &Change) -> bool) -> std::io::Result<()> {
        let mut rank = 0;
        self.each_change(&mut |change| {
            rank += 1;
            f(rank - 1, change)
        })
    }

    /// Gives the changes at `positions` (from [`Changes::each_change_at`],
    /// in increasing order) to `f`. By default, a walk over all of them.
    fn changes_at(&self, positions: &[usize], f: &mut dyn FnMut(&Change)) -> std::io::Result<()> {
        let mut next = positions.iter().peekable();
        self.each_change_at(&mut |at, change| {
            while next.next_if(|p| **p < at).is_some() {}
            if next.next_if(|p| **p == at).is_some() {
                f(change);
            }
            next.peek().is_some()
        })
    }
}

impl Changes for Vec<Change> {
    fn each_change(&self, f: &mut dyn FnMut(&Change) -> bool) -> std::io::Result<()> {
        for change in self {
            if !f(change) {
                break;
            }
        }
        Ok(())
    }
}

/// RFC 3339 in UTC, to the second; `SOURCE_DATE_EPOCH` fixes it for
/// reproducible output.
pub fn now_rfc3339() -> Result<String> {
    let time = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(raw) => {
            let secs: u64 = raw.trim().parse().map_err(|_| {
                Error::usage(format!(
                    "SOURCE_DATE_EPOCH `{raw}` is not a number of seconds"
                ))
            })?;
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)
        }
        Err(_) => std::time::SystemTime::now(),
    };
    Ok(humantime::format_rfc3339_seconds(time).to_string())
}
