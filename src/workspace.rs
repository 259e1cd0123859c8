//! The front door every command comes in by: [`Workspace::open`] opens the lake the settings
//! name, checks what the command needs of it, takes the writer's lock when it writes, and
//! connects the database.
//!
//! Each command once did this itself — stages, `serve`, the operator commands, `vacuum` and
//! `status` — each with its own "initialised? database? lock? connect" and its own wording of
//! "not initialised". What differs between them is what they are allowed to do, so that is
//! what they say ([`Access`]); the rest is here once.

use std::time::Duration;

use anyhow::{Result, bail};

use crate::config::Settings;
use crate::db::Database;
use crate::lake::Lake;
use crate::lake::lock::LakeLock;

/// What a command does with the lake, and so what opening it checks and takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Stages from 01-bronze on, and `vacuum`: the lake must be initialised; the writer's lock
    /// is taken (waiting or failing as `[run]` says) and the database connected with
    /// `[database] max_connections`.
    Write,
    /// `00-init`, and `run` when it starts there: [`Access::Write`] to a lake that need not
    /// exist yet.
    Create,
    /// `status`: the lake must be initialised; no lock, so it works while a batch runs. The
    /// database is connected only if there is one (a configured URL, or the embedded file).
    Read,
    /// `serve`: a local, initialised lake (models are read from its folders) and its database,
    /// migrated; no lock.
    Serve,
    /// The operator commands (verdicts, incidents): the database alone, migrated; no lock,
    /// and the lake need not exist (only the embedded database's path is taken from it).
    Database,
}

/// An open lake, its database and, for a writer, its lock.
pub struct Workspace {
    pub lake: Lake,
    /// `None` only for [`Access::Read`] of a lake whose embedded database was never made.
    pub db: Option<Database>,
    /// Held while the workspace lives: one writer per lake (see [`crate::lake::lock`]).
    pub lock: Option<LakeLock>,
}

impl Workspace {
    pub fn open(settings: &Settings, access: Access) -> Result<Workspace> {
        let location = &settings.lake.path;
        if access == Access::Serve && location.is_remote() {
            bail!(
                "`loglake serve` reads its models from a local lake; {location} is on object storage: point --lake at a local copy of its models (or serve from the machine that trains)"
            );
        }
        let lake = Lake::open(location)?;
        // Before the lock, whose file would otherwise make a folder where no lake is.
        if matches!(access, Access::Write | Access::Read | Access::Serve) {
            require_initialised(&lake)?;
        }
        lake.check_database(&settings.database.url)?;
        // For a lake on object storage this locks the process's private working copy (always
        // free); its writers are kept apart by the leases stages take.
        let lock = match access {
            Access::Write | Access::Create => Some(LakeLock::acquire(
                lake.root(),
                settings.run.on_locked,
                Duration::from_secs(settings.run.lock_timeout_seconds),
            )?),
            _ => None,
        };
        let url = &settings.database.url;
        let embedded = lake.default_database_path();
        let db = match access {
            Access::Read if url.trim().is_empty() && !embedded.is_file() => None,
            Access::Write | Access::Create => Some(Database::connect(
                url,
                &embedded,
                settings.database.max_connections,
            )?),
            // The service's queries run one at a time on their own thread, plus a health check;
            // migrated, so that a database made by an older loglake has the tokens table.
            Access::Serve => {
                let db = Database::connect(url, &embedded, 2)?;
                db.migrate()?;
                Some(db)
            }
            Access::Read => Some(Database::connect(url, &embedded, 1)?),
            Access::Database => {
                let db = Database::connect(url, &embedded, 1)?;
                db.migrate()?;
                Some(db)
            }
        };
        Ok(Workspace { lake, db, lock })
    }

    /// The database, for an access that always connects one.
    pub fn db(&self) -> &Database {
        self.db.as_ref().expect("this access connects the database")
    }

    /// Close the database's connections (the workspace is done with).
    pub fn close(self) {
        if let Some(db) = self.db {
            db.close();
        }
    }
}

/// Fail unless `00-init` has made `lake` a lake: the one wording of it, for every command.
pub fn require_initialised(lake: &Lake) -> Result<()> {
    if !lake.is_initialised()? {
        bail!(
            "the lake at {} is not initialised: run `loglake 00-init` (or `loglake run`) first, or point --lake / [lake] path at an existing lake",
            lake.location()
        );
    }
    Ok(())
}
