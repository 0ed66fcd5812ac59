//! POSIX ACLs: the Linux xattr form (`system.posix_acl_access`, `system.posix_acl_default`),
//! its validation, the text form `getfacl` prints, and the rules of the kernel's
//! fs/posix_acl.c that tie an ACL to the file mode. Pure functions: ns.rs applies them in
//! one metadata transaction with the mode they produce; access checks call [`permits`].
//!
//! Xattr form (little-endian): a 4-byte header holding version 2, then 8 bytes per entry:
//! tag u16, perm u16, id u32. Tags: USER_OBJ 0x01, USER 0x02, GROUP_OBJ 0x04, GROUP 0x08,
//! MASK 0x10, OTHER 0x20; perm bits read 4, write 2, execute 1; the id of the four
//! unnamed tags is written as 0xFFFF_FFFF (ACL_UNDEFINED_ID) and ignored when read.
//!
//! Invariants of an [`Acl`] value (checked by [`Acl::from_xattr`], kept by every method):
//! exactly one USER_OBJ, GROUP_OBJ and OTHER entry, at most one MASK, which is present
//! whenever a named (USER or GROUP) entry is; named entries have distinct ids; entries are
//! in the canonical order USER_OBJ, USER (by id), GROUP_OBJ, GROUP (by id), MASK, OTHER;
//! perms are within rwx.

use crate::{Result, VfsError};

/// The access ACL: consulted for permission checks; its owner, mask (or group) and other
/// entries are the mode's permission bits.
pub const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
/// The default ACL of a directory: what new entries in it inherit.
pub const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";

const VERSION: u32 = 2;
const UNDEFINED_ID: u32 = u32::MAX;
const TAG_USER_OBJ: u16 = 0x01;
const TAG_USER: u16 = 0x02;
const TAG_GROUP_OBJ: u16 = 0x04;
const TAG_GROUP: u16 = 0x08;
const TAG_MASK: u16 = 0x10;
const TAG_OTHER: u16 = 0x20;

const S_ISGID: u32 = 0o2000;

/// Read, write, execute (search) as permission-mask bits.
pub const MAY_READ: u32 = 4;
pub const MAY_WRITE: u32 = 2;
pub const MAY_EXEC: u32 = 1;

/// Which entry an ACL entry is. The derived order is the canonical entry order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tag {
    UserObj,
    User(u32),
    GroupObj,
    Group(u32),
    Mask,
    Other,
}

/// One entry: a tag and its rwx bits (4 read, 2 write, 1 execute).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub tag: Tag,
    pub perm: u32,
}

/// A valid POSIX ACL (see the module invariants).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    entries: Vec<Entry>,
}

fn malformed(why: &'static str) -> VfsError {
    VfsError::Invalid(why)
}

/// Which of the two ACL xattrs `name` is, if either.
pub fn acl_name(name: &[u8]) -> Option<AclKind> {
    match name {
        ACL_ACCESS => Some(AclKind::Access),
        ACL_DEFAULT => Some(AclKind::Default),
        _ => None,
    }
}

/// The two ACLs an inode may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AclKind {
    Access,
    Default,
}

impl Acl {
    /// The minimal ACL equivalent to a mode's permission bits (owner, group, other).
    pub fn from_mode(mode: u32) -> Acl {
        Acl {
            entries: vec![
                Entry {
                    tag: Tag::UserObj,
                    perm: (mode >> 6) & 7,
                },
                Entry {
                    tag: Tag::GroupObj,
                    perm: (mode >> 3) & 7,
                },
                Entry {
                    tag: Tag::Other,
                    perm: mode & 7,
                },
            ],
        }
    }

    /// Builds an ACL from entries in any order; EINVAL unless they make a valid ACL.
    pub fn from_entries(mut entries: Vec<Entry>) -> Result<Acl> {
        entries.sort_by_key(|e| e.tag);
        let acl = Acl { entries };
        acl.validate()?;
        Ok(acl)
    }

    /// Parses and validates the xattr form; anything malformed is `Invalid` (EINVAL).
    /// Named entries may come in any order (they are sorted); the tag kinds must come in
    /// the canonical order, as the kernel requires.
    pub fn from_xattr(value: &[u8]) -> Result<Acl> {
        if value.len() < 4 {
            return Err(malformed("POSIX ACL shorter than its header"));
        }
        let version = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
        if version != VERSION {
            return Err(malformed("POSIX ACL of an unknown version"));
        }
        let body = &value[4..];
        if body.is_empty() || !body.len().is_multiple_of(8) {
            return Err(malformed(
                "POSIX ACL length is not a whole number of entries",
            ));
        }
        let mut entries = Vec::with_capacity(body.len() / 8);
        let mut last_kind = 0u16;
        for e in body.chunks_exact(8) {
            let tag = u16::from_le_bytes([e[0], e[1]]);
            let perm = u16::from_le_bytes([e[2], e[3]]) as u32;
            let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            if perm & !7 != 0 {
                return Err(malformed("POSIX ACL entry with permission bits beyond rwx"));
            }
            if tag < last_kind {
                return Err(malformed("POSIX ACL entries out of order"));
            }
            last_kind = tag;
            let tag = match tag {
                TAG_USER_OBJ => Tag::UserObj,
                TAG_USER if id != UNDEFINED_ID => Tag::User(id),
                TAG_GROUP_OBJ => Tag::GroupObj,
                TAG_GROUP if id != UNDEFINED_ID => Tag::Group(id),
                TAG_MASK => Tag::Mask,
                TAG_OTHER => Tag::Other,
                TAG_USER | TAG_GROUP => return Err(malformed("named POSIX ACL entry without id")),
                _ => return Err(malformed("POSIX ACL entry with an unknown tag")),
            };
            entries.push(Entry { tag, perm });
        }
        Acl::from_entries(entries)
    }

    /// Checks the module invariants on sorted entries.
    fn validate(&self) -> Result<()> {
        let count = |f: fn(&Tag) -> bool| self.entries.iter().filter(|e| f(&e.tag)).count();
        if count(|t| *t == Tag::UserObj) != 1
            || count(|t| *t == Tag::GroupObj) != 1
            || count(|t| *t == Tag::Other) != 1
        {
            return Err(malformed(
                "POSIX ACL needs exactly one owner, owning-group and other entry",
            ));
        }
        let masks = count(|t| *t == Tag::Mask);
        let named = count(|t| matches!(t, Tag::User(_) | Tag::Group(_)));
        if masks > 1 || (named > 0 && masks == 0) {
            return Err(malformed(
                "POSIX ACL with named entries needs exactly one mask entry",
            ));
        }
        if self.entries.windows(2).any(|w| w[0].tag == w[1].tag) {
            return Err(malformed("POSIX ACL names one user or group twice"));
        }
        if self.entries.iter().any(|e| e.perm & !7 != 0) {
            return Err(malformed("POSIX ACL entry with permission bits beyond rwx"));
        }
        Ok(())
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The xattr form, entries in canonical order.
    pub fn to_xattr(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 8 * self.entries.len());
        out.extend_from_slice(&VERSION.to_le_bytes());
        for e in &self.entries {
            let (tag, id) = match e.tag {
                Tag::UserObj => (TAG_USER_OBJ, UNDEFINED_ID),
                Tag::User(id) => (TAG_USER, id),
                Tag::GroupObj => (TAG_GROUP_OBJ, UNDEFINED_ID),
                Tag::Group(id) => (TAG_GROUP, id),
                Tag::Mask => (TAG_MASK, UNDEFINED_ID),
                Tag::Other => (TAG_OTHER, UNDEFINED_ID),
            };
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&(e.perm as u16).to_le_bytes());
            out.extend_from_slice(&id.to_le_bytes());
        }
        out
    }

    /// The short text form of `getfacl -c`/`setfacl`, numeric ids, comma-separated:
    /// `user::rw-,user:1000:r-x,group::r--,mask::r-x,other::r--`.
    pub fn to_text(&self) -> String {
        let rwx = |p: u32| {
            let mut s = String::with_capacity(3);
            s.push(if p & 4 != 0 { 'r' } else { '-' });
            s.push(if p & 2 != 0 { 'w' } else { '-' });
            s.push(if p & 1 != 0 { 'x' } else { '-' });
            s
        };
        self.entries
            .iter()
            .map(|e| {
                let head = match e.tag {
                    Tag::UserObj => "user::".to_string(),
                    Tag::User(id) => format!("user:{id}:"),
                    Tag::GroupObj => "group::".to_string(),
                    Tag::Group(id) => format!("group:{id}:"),
                    Tag::Mask => "mask::".to_string(),
                    Tag::Other => "other::".to_string(),
                };
                head + &rwx(e.perm)
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    fn perm_of(&self, tag: Tag) -> Option<u32> {
        self.entries.iter().find(|e| e.tag == tag).map(|e| e.perm)
    }

    fn set_perm(&mut self, tag: Tag, perm: u32) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.tag == tag) {
            e.perm = perm & 7;
        }
    }

    /// The group class entry: the mask when there is one, else the owning group.
    fn group_class(&self) -> Tag {
        if self.perm_of(Tag::Mask).is_some() {
            Tag::Mask
        } else {
            Tag::GroupObj
        }
    }

    /// The mode permission bits (0o777) this ACL implies: owner, group class, other.
    pub fn mode_bits(&self) -> u32 {
        let u = self.perm_of(Tag::UserObj).unwrap_or(0);
        let g = self.perm_of(self.group_class()).unwrap_or(0);
        let o = self.perm_of(Tag::Other).unwrap_or(0);
        (u << 6) | (g << 3) | o
    }

    /// True when the mode alone says everything (no named entries, no mask), as
    /// posix_acl_equiv_mode: such an ACL is not stored, the mode is.
    pub fn is_minimal(&self) -> bool {
        self.entries.len() == 3
    }

    /// posix_acl_chmod: the owner, group class (mask, or owning group) and other entries
    /// take the new mode's bits; named entries are left alone.
    pub fn chmod(&mut self, perm: u32) {
        self.set_perm(Tag::UserObj, perm >> 6);
        self.set_perm(self.group_class(), perm >> 3);
        self.set_perm(Tag::Other, perm);
    }
}

/// What setting an access ACL does to an inode (posix_acl_update_mode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModeUpdate {
    /// The new permission bits (the low 12 bits of st_mode).
    pub perm: u32,
    /// The ACL to store, or None when it is equivalent to the mode (any stored one goes).
    pub acl: Option<Acl>,
}

/// posix_acl_update_mode: the mode's rwx bits follow the ACL's owner, group class and
/// other entries, and setgid is cleared unless the caller is in the file's group (or
/// privileged) — `caller_in_group` says which.
pub fn update_mode(acl: Acl, perm: u32, caller_in_group: bool) -> ModeUpdate {
    let mut perm = (perm & !0o777) | acl.mode_bits();
    if !caller_in_group {
        perm &= !S_ISGID;
    }
    ModeUpdate {
        perm,
        acl: if acl.is_minimal() { None } else { Some(acl) },
    }
}

/// The permission bits and ACLs of a new inode (posix_acl_create).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    pub perm: u32,
    /// Access ACL to store with the inode (None when equivalent to `perm`).
    pub access: Option<Acl>,
    /// Default ACL to store (directories inherit their parent's).
    pub default: Option<Acl>,
}

/// posix_acl_create: the permission bits and ACLs of a new inode of requested `mode` (the
/// low 12 bits, setgid inheritance already applied) in a directory whose default ACL is
/// `parent_default`. Without a default ACL the umask applies and no ACL is stored; with
/// one the umask is ignored, the access ACL is the default ACL masked by `mode`
/// (posix_acl_create_masq) and the mode follows it; a directory also inherits the default
/// ACL itself. Symlinks take no ACL: callers pass them `None`.
pub fn create(parent_default: Option<&Acl>, is_dir: bool, mode: u32, umask: u32) -> Created {
    let Some(def) = parent_default else {
        return Created {
            perm: mode & !umask & 0o7777,
            access: None,
            default: None,
        };
    };
    let mut acl = def.clone();
    // `m` is the mode's rwx part, narrowed as the entries are; each entry is narrowed by
    // the requested mode's matching class.
    let mut m = mode & 0o777;
    let mut has_mask = false;
    for e in acl.entries.iter_mut() {
        match e.tag {
            Tag::UserObj => {
                e.perm &= (m >> 6) & 7;
                m &= (e.perm << 6) | !0o700;
            }
            Tag::Other => {
                e.perm &= m & 7;
                m &= e.perm | !0o007;
            }
            Tag::Mask => has_mask = true,
            _ => {}
        }
    }
    let class = if has_mask { Tag::Mask } else { Tag::GroupObj };
    if let Some(e) = acl.entries.iter_mut().find(|e| e.tag == class) {
        e.perm &= (m >> 3) & 7;
        m &= (e.perm << 3) | !0o070;
    }
    let perm = (mode & !0o777) | (m & 0o777);
    Created {
        perm,
        access: if acl.is_minimal() { None } else { Some(acl) },
        default: if is_dir { Some(def.clone()) } else { None },
    }
}

/// posix_acl_permission: whether a process with fsuid `uid` and groups `gids` (its fsgid
/// and supplementary groups) gets every bit of `mask` (rwx bits: 4 read, 2 write,
/// 1 execute) from `acl` on an inode owned by `owner_uid:owner_gid`.
///
/// The first matching class decides, as in the kernel: the owner entry if `uid` owns the
/// file; else a named user entry for `uid` (limited by the mask); else the owning-group
/// and named-group entries the caller belongs to — granted if any one of them holds all
/// of `mask` (limited by the mask), refused if the caller matched a group but none does;
/// else the other entry. Privilege (uid 0, capabilities) is not considered here: the
/// caller applies it around this check.
// The API's permission checks (access.rs) call this; the FUSE face leaves checks to the
// kernel, which reads the same stored ACL.
pub(crate) fn permits(
    acl: &Acl,
    owner_uid: u32,
    owner_gid: u32,
    uid: u32,
    gids: &[u32],
    mask: u32,
) -> bool {
    let want = mask & 7;
    let limit = acl.perm_of(Tag::Mask).unwrap_or(7);
    let has = |perm: u32| perm & want == want;
    let mut in_a_group = false;
    for e in &acl.entries {
        match e.tag {
            Tag::UserObj if uid == owner_uid => return has(e.perm),
            Tag::User(id) if id == uid => return has(e.perm & limit),
            Tag::GroupObj if gids.contains(&owner_gid) => {
                in_a_group = true;
                if has(e.perm) {
                    return has(e.perm & limit);
                }
            }
            Tag::Group(id) if gids.contains(&id) => {
                in_a_group = true;
                if has(e.perm) {
                    return has(e.perm & limit);
                }
            }
            Tag::Other => return !in_a_group && has(e.perm),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
#[path = "acl_tests.rs"]
mod tests;
