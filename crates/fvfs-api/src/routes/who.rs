//! Who a request acts as ([`Who`], from the [`Caller`] the auth layer admitted) and the
//! squash rules of the HTTP face (docs/API.md, "Identities and squash"), as NFS applies
//! them to an export's clients.
//!
//! Invariants:
//! - A token acts as its uid:gid (default: the owner of the root directory); the engine
//!   checks every operation's permissions as that identity (`Vfs::*_as`). The control
//!   socket, and the router used in-process without `auth::guard`, act as root.
//! - Only an admin token (or the control socket) names another owner: a `uid` other
//!   than the identity's, a `gid` other than the identity's or the one the parent
//!   passes on. Anything else is `403 not_permitted` (EPERM), never silently changed.
//! - The daemon's own routes (`/v1/admin/*`, `/v1/devices`) need an admin token.
//! - No token creates a set-user-ID or set-group-ID regular file or a character or block
//!   device, unless it is an admin token and `[daemon] allow_devices = true`; the control
//!   socket may. Set-group-ID directories, fifos and sockets are ordinary.

use super::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use fvfs_types::api::CallerInfo;
use fvfs_types::{FileKind, ROOT_INO};
use fvfs_vfs::{Attr, Ctx};

const SETID: u32 = 0o6000;
const S_ISGID: u32 = 0o2000;

/// The identity and privileges of one request.
#[derive(Clone, Debug)]
pub struct Who {
    /// The identity permissions are checked as and new objects belong to.
    pub ctx: Ctx,
    /// May name any owner (an admin token, or the control socket).
    pub admin: bool,
    /// The control socket (root, every privilege).
    pub local: bool,
    pub token: String,
    pub read_only: bool,
}

impl Who {
    pub fn local() -> Who {
        Who {
            ctx: Ctx::root(),
            admin: true,
            local: true,
            token: "local".into(),
            read_only: false,
        }
    }

    pub fn info(&self) -> CallerInfo {
        CallerInfo {
            token: self.token.clone(),
            uid: self.ctx.uid,
            gid: self.ctx.gid,
            admin: self.admin,
            read_only: self.read_only,
        }
    }

    fn refuse(&self, what: &str) -> ApiError {
        ApiError::not_permitted(format!(
            "{what} (token {:?} acts as uid {} gid {})",
            self.token, self.ctx.uid, self.ctx.gid
        ))
    }

    /// Routes that act on the daemon rather than on files (tier eviction, replication,
    /// the queue, the clients seen) are for admin tokens (and the control socket): a local
    /// user cannot do these either.
    pub fn need_admin(&self, what: &str) -> ApiResult<()> {
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{what} needs an admin token (token {:?} is not one)",
                self.token
            )))
        }
    }

    /// The owner a creation names: another uid or gid than the caller's needs an admin
    /// token. A gid equal to the group a set-group-ID `dir` passes on is no change.
    pub fn check_new_owner(&self, uid: Option<u32>, gid: Option<u32>, dir: &Attr) -> ApiResult<()> {
        if self.admin {
            return Ok(());
        }
        if uid.is_some_and(|u| u != self.ctx.uid) {
            return Err(self.refuse("only an admin token may give a new object another owner"));
        }
        let inherited = (dir.perm & S_ISGID != 0).then_some(dir.gid);
        if gid.is_some_and(|g| g != self.ctx.gid && Some(g) != inherited) {
            return Err(self.refuse("only an admin token may give a new object another group"));
        }
        Ok(())
    }

    /// A chown or chgrp of `cur` to `uid`/`gid`: another id than the present one or the
    /// caller's needs an admin token (the engine then applies the POSIX rules).
    pub fn check_chown(&self, cur: &Attr, uid: Option<u32>, gid: Option<u32>) -> ApiResult<()> {
        if self.admin {
            return Ok(());
        }
        if uid.is_some_and(|u| u != cur.uid) {
            return Err(self.refuse("only an admin token may change a file's owner"));
        }
        if gid.is_some_and(|g| g != cur.gid && g != self.ctx.gid) {
            return Err(self.refuse("only an admin token may give a file another group"));
        }
        Ok(())
    }

    /// Whether devices and set-id files are allowed to this caller.
    fn privileged(&self, allow_devices: bool) -> bool {
        self.local || (self.admin && allow_devices)
    }

    /// A regular file's mode with set-user-ID or set-group-ID, or a device node.
    pub fn check_mode(&self, kind: FileKind, mode: u32, allow_devices: bool) -> ApiResult<()> {
        if self.privileged(allow_devices) {
            return Ok(());
        }
        match kind {
            FileKind::File if mode & SETID != 0 => Err(self.refuse(
                "set-user-ID and set-group-ID files need an admin token and `[daemon] allow_devices = true`",
            )),
            FileKind::CharDev | FileKind::BlockDev => Err(self.refuse(
                "device nodes need an admin token and `[daemon] allow_devices = true`",
            )),
            _ => Ok(()),
        }
    }
}

impl FromRequestParts<AppState> for Who {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> ApiResult<Who> {
        let Some(Caller::Token(t)) = parts.extensions.get::<Caller>() else {
            return Ok(Who::local());
        };
        let (uid, gid) = match (t.uid, t.gid) {
            (Some(u), Some(g)) => (u, g),
            // An entry older than identities: the owner of the root directory.
            (u, g) => {
                let root = st.vfs.getattr(ROOT_INO)?;
                (u.unwrap_or(root.uid), g.unwrap_or(root.gid))
            }
        };
        Ok(Who {
            ctx: Ctx { uid, gid, pid: 0 },
            admin: t.admin,
            local: false,
            token: t.name.clone(),
            read_only: t.read_only,
        })
    }
}
