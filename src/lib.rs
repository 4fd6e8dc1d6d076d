//! sync-access: plan, review, approve and apply the migration of a Kestra
//! store's legacy global access into a tenant.

pub mod error;
pub mod sync;

pub use error::{Error, ExitStatus, Result};
pub mod plan;
