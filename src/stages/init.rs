//! `00-init`: create the lake layout and apply database migrations. Idempotent.

use anyhow::Result;

use super::Context;
use crate::stages::RunOutcome;

pub fn run(ctx: &Context) -> Result<RunOutcome> {
    ctx.lake.ensure_layout()?;
    ctx.db.migrate()?;
    Ok(RunOutcome {
        message: format!(
            "lake ready at {}, database schema up to date at {}",
            ctx.lake.location(),
            ctx.db.display_url()
        ),
        ..Default::default()
    })
}
