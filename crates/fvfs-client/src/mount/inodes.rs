//! The mount's inode table: FUSE inode number → the (parent, name) pairs it is known
//! under, so that the path of any inode the kernel knows can be built, plus the server
//! inode it currently stands for.
//!
//! Invariants: FUSE inode 1 is the root. A FUSE inode number is the server's inode number
//! of the first object it was bound to (the root and any clash get a number from a
//! private range above 2^63), so numbers are never reused: server inode numbers never are.
//! A server inode is bound to at most one FUSE inode and a (parent, name) to at most one
//! inode. A hard-linked file has several names (at most [`MAX_NAMES`] remembered, the most
//! recently confirmed first: that one addresses it); a directory has one. A `PUT` replaces
//! a file by a new server inode: the mount re-binds the new number to the same FUSE
//! inode, so a file keeps its number across rewrites. An inode whose last known name is
//! unlinked or renamed over is *detached*: it has no path any more and path operations on
//! it fail with ENOENT. Nodes live until the kernel forgets its last lookup.

use std::collections::HashMap;

/// The FUSE inode number of the root.
pub const ROOT: u64 = 1;
/// First FUSE inode number handed out when a server number cannot be used as is.
const PRIVATE_BASE: u64 = 1 << 63;
/// Names remembered per hard-linked inode (older ones are forgotten; a lookup of a
/// forgotten name binds it again).
pub const MAX_NAMES: usize = 8;

type Key = (u64, String);

#[derive(Debug)]
struct Node {
    /// The names the inode is known under, the one used to address it first. Empty =
    /// detached (unlinked or replaced).
    names: Vec<Key>,
    /// Kernel references (entry replies minus forgets).
    nlookup: u64,
    /// The server inode this node currently stands for.
    server: u64,
    dir: bool,
}

#[derive(Debug)]
pub struct Inodes {
    nodes: HashMap<u64, Node>,
    children: HashMap<Key, u64>,
    by_server: HashMap<u64, u64>,
    next_private: u64,
}

impl Inodes {
    /// A table holding only the root, which stands for the server inode `root_server`.
    pub fn new(root_server: u64) -> Inodes {
        let mut t = Inodes {
            nodes: HashMap::new(),
            children: HashMap::new(),
            by_server: HashMap::new(),
            next_private: PRIVATE_BASE,
        };
        t.nodes.insert(
            ROOT,
            Node {
                names: Vec::new(),
                nlookup: 1,
                server: root_server,
                dir: true,
            },
        );
        t.by_server.insert(root_server, ROOT);
        t
    }

    /// The path of `ino` relative to the root (`""` for the root, `a/b` below), or None
    /// when the inode is unknown or it or an ancestor is detached.
    pub fn path(&self, ino: u64) -> Option<String> {
        let mut names = Vec::new();
        let mut cur = ino;
        // Bounded: a path cannot be longer than the number of nodes.
        for _ in 0..=self.nodes.len() {
            if cur == ROOT {
                names.reverse();
                return Some(names.join("/"));
            }
            let (parent, name) = self.nodes.get(&cur)?.names.first()?;
            names.push(name.as_str());
            cur = *parent;
        }
        None
    }

    /// The path of `name` in directory `parent`.
    pub fn child_path(&self, parent: u64, name: &str) -> Option<String> {
        let p = self.path(parent)?;
        Some(if p.is_empty() {
            name.to_string()
        } else {
            format!("{p}/{name}")
        })
    }

    /// The server inode `ino` stands for.
    pub fn server(&self, ino: u64) -> Option<u64> {
        self.nodes.get(&ino).map(|n| n.server)
    }

    /// The FUSE number to show for a server inode (readdir): its binding if it has one.
    pub fn fuse_ino(&self, server: u64) -> u64 {
        match self.by_server.get(&server) {
            Some(&ino) => ino,
            // Unbound numbers that could be mistaken for a bound one: any unused number.
            None if server == ROOT || server >= PRIVATE_BASE => PRIVATE_BASE - 1,
            None => server,
        }
    }

    /// The inode known at (parent, name).
    pub fn child(&self, parent: u64, name: &str) -> Option<u64> {
        self.children.get(&(parent, name.to_string())).copied()
    }

    /// The FUSE inode bound to a server inode.
    pub fn bound(&self, server: u64) -> Option<u64> {
        self.by_server.get(&server).copied()
    }

    pub fn is_attached(&self, ino: u64) -> bool {
        ino == ROOT || self.nodes.get(&ino).is_some_and(|n| !n.names.is_empty())
    }

    /// Records an entry reply for `name` in `parent`, standing for server inode `server`
    /// (lookup, creation, link): returns its FUSE inode and counts one kernel reference.
    /// A file already bound under another name gains this one (a hard link); a directory
    /// moves to it.
    pub fn bind(&mut self, parent: u64, name: &str, server: u64, dir: bool) -> u64 {
        let key = (parent, name.to_string());
        let ino = if let Some(&ino) = self.by_server.get(&server) {
            ino
        } else if let Some(&ino) = self
            .children
            .get(&key)
            .filter(|i| self.nodes.get(i).is_some_and(|n| n.dir == dir))
        {
            // The same name now holds another server inode of the same kind: the file was
            // replaced (a PUT elsewhere); it keeps its FUSE number.
            self.rebind_server(ino, server);
            ino
        } else {
            let ino =
                if server == ROOT || server >= PRIVATE_BASE || self.nodes.contains_key(&server) {
                    self.next_private += 1;
                    self.next_private
                } else {
                    server
                };
            self.by_server.insert(server, ino);
            self.nodes.insert(
                ino,
                Node {
                    names: Vec::new(),
                    nlookup: 0,
                    server,
                    dir,
                },
            );
            ino
        };
        if ino != ROOT {
            let only = self.nodes.get(&ino).is_some_and(|n| n.dir);
            self.place(ino, key, only);
        }
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.nlookup += 1;
        }
        ino
    }

    /// Makes `ino` stand for server inode `server` (after a PUT replaced the file).
    pub fn rebind_server(&mut self, ino: u64, server: u64) {
        let Some(n) = self.nodes.get_mut(&ino) else {
            return;
        };
        if n.server == server {
            return;
        }
        let old = std::mem::replace(&mut n.server, server);
        if self.by_server.get(&old) == Some(&ino) {
            self.by_server.remove(&old);
        }
        self.by_server.insert(server, ino);
    }

    /// Removes `key` from the names of `ino` (the table entry stays as it is).
    fn drop_name(&mut self, ino: u64, key: &Key) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.names.retain(|k| k != key);
        }
    }

    /// Puts `ino` at `key` as the name that addresses it; whatever else was there loses
    /// that name. With `only`, every other name of `ino` is dropped (a directory, a move).
    fn place(&mut self, ino: u64, key: Key, only: bool) {
        if let Some(&other) = self.children.get(&key) {
            if other != ino {
                self.drop_name(other, &key);
            }
        }
        let Some(n) = self.nodes.get_mut(&ino) else {
            return;
        };
        let dropped: Vec<Key> = if only {
            std::mem::take(&mut n.names)
                .into_iter()
                .filter(|k| *k != key)
                .collect()
        } else {
            n.names.retain(|k| *k != key);
            n.names.insert(0, key.clone());
            if n.names.len() > MAX_NAMES {
                n.names.split_off(MAX_NAMES)
            } else {
                Vec::new()
            }
        };
        if only {
            n.names.push(key.clone());
        }
        for k in dropped {
            if self.children.get(&k) == Some(&ino) {
                self.children.remove(&k);
            }
        }
        self.children.insert(key, ino);
    }

    /// The name `name` in `parent` is gone (unlink, rmdir): its inode loses it, and is
    /// detached when it was its last known name.
    pub fn detach(&mut self, parent: u64, name: &str) -> Option<u64> {
        let key = (parent, name.to_string());
        let ino = self.children.remove(&key)?;
        self.drop_name(ino, &key);
        Some(ino)
    }

    /// The name addressing `ino` turned out stale (the daemon no longer knows it): drops it
    /// when another name remains to try. Returns whether one does.
    pub fn drop_stale_name(&mut self, ino: u64) -> bool {
        let Some(n) = self.nodes.get_mut(&ino) else {
            return false;
        };
        if n.names.len() < 2 {
            return false;
        }
        let key = n.names.remove(0);
        if self.children.get(&key) == Some(&ino) {
            self.children.remove(&key);
        }
        true
    }

    /// A rename succeeded: the inode at (parent, name), if known, moves to
    /// (newparent, newname); whatever was there loses that name. Two names of one file:
    /// POSIX renames nothing.
    pub fn rename(&mut self, parent: u64, name: &str, newparent: u64, newname: &str) {
        let key = (parent, name.to_string());
        let newkey = (newparent, newname.to_string());
        match self.children.get(&key).copied() {
            Some(ino) if self.children.get(&newkey) == Some(&ino) => {}
            Some(ino) => {
                self.children.remove(&key);
                self.drop_name(ino, &key);
                let only = self.nodes.get(&ino).is_some_and(|n| n.dir);
                self.place(ino, newkey, only);
            }
            None => {
                self.detach(newparent, newname);
            }
        }
    }

    /// The kernel dropped `n` references to `ino`; the node goes with the last one.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.nlookup = node.nlookup.saturating_sub(n);
        }
        self.reap(ino);
    }

    /// Like [`Inodes::forget`], but the node stays (unreferenced) while something local
    /// still needs its path: a pending upload. [`Inodes::reap`] removes it later.
    pub fn forget_keep(&mut self, ino: u64, n: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.nlookup = node.nlookup.saturating_sub(n);
        }
    }

    /// Removes `ino` if the kernel holds no reference to it.
    pub fn reap(&mut self, ino: u64) {
        if ino == ROOT {
            return;
        }
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        if node.nlookup > 0 {
            return;
        }
        let Some(node) = self.nodes.remove(&ino) else {
            return;
        };
        for key in node.names {
            if self.children.get(&key) == Some(&ino) {
                self.children.remove(&key);
            }
        }
        if self.by_server.get(&node.server) == Some(&ino) {
            self.by_server.remove(&node.server);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_lookups_and_renames() {
        let mut t = Inodes::new(7);
        assert_eq!(t.path(ROOT).as_deref(), Some(""));
        let a = t.bind(ROOT, "a", 10, true);
        assert_eq!(a, 10);
        let f = t.bind(a, "f", 11, false);
        assert_eq!(t.path(f).as_deref(), Some("a/f"));
        assert_eq!(t.child_path(a, "g").as_deref(), Some("a/g"));
        let b = t.bind(ROOT, "b", 12, true);
        t.rename(ROOT, "a", b, "a2");
        assert_eq!(t.path(f).as_deref(), Some("b/a2/f"));
        // Server inode 1 is not the root here: it gets a private number.
        let x = t.bind(ROOT, "x", 1, false);
        assert!(x >= PRIVATE_BASE);
        assert_eq!(t.fuse_ino(1), x);
        assert_eq!(t.fuse_ino(7), ROOT);
    }

    #[test]
    fn rename_over_and_unlink_detach() {
        let mut t = Inodes::new(1);
        let a = t.bind(ROOT, "a", 20, false);
        let b = t.bind(ROOT, "b", 21, false);
        t.rename(ROOT, "a", ROOT, "b");
        assert_eq!(t.path(a).as_deref(), Some("b"));
        assert_eq!(t.path(b), None);
        assert!(!t.is_attached(b));
        assert_eq!(t.detach(ROOT, "b"), Some(a));
        assert_eq!(t.path(a), None);
        // A new file at the same name is a new inode.
        let c = t.bind(ROOT, "b", 22, false);
        assert_eq!(c, 22);
        assert_eq!(t.path(c).as_deref(), Some("b"));
    }

    #[test]
    fn a_rewritten_file_keeps_its_number() {
        let mut t = Inodes::new(1);
        let f = t.bind(ROOT, "f", 30, false);
        t.rebind_server(f, 31);
        assert_eq!(t.server(f), Some(31));
        assert_eq!(t.bind(ROOT, "f", 31, false), f);
        // Replaced elsewhere by a file: same number; by a directory: a new inode.
        assert_eq!(t.bind(ROOT, "f", 32, false), f);
        let d = t.bind(ROOT, "f", 33, true);
        assert_ne!(d, f);
        assert!(!t.is_attached(f));
    }

    #[test]
    fn forget_drops_the_node_with_its_last_reference() {
        let mut t = Inodes::new(1);
        let f = t.bind(ROOT, "f", 40, false);
        assert_eq!(t.bind(ROOT, "f", 40, false), f);
        t.forget(f, 1);
        assert!(t.path(f).is_some());
        t.forget(f, 1);
        assert!(t.path(f).is_none());
        assert_eq!(t.len(), 1);
        t.forget(ROOT, 5);
        assert_eq!(t.path(ROOT).as_deref(), Some(""));
    }

    #[test]
    fn a_kept_node_outlives_the_kernels_references_until_reaped() {
        let mut t = Inodes::new(1);
        let f = t.bind(ROOT, "f", 40, false);
        t.forget_keep(f, 1);
        assert_eq!(
            t.path(f).as_deref(),
            Some("f"),
            "kept for its pending upload"
        );
        // A new lookup finds the same inode again; reaping then leaves it alone.
        assert_eq!(t.bind(ROOT, "f", 40, false), f);
        t.reap(f);
        assert!(t.path(f).is_some());
        t.forget_keep(f, 1);
        t.reap(f);
        assert!(t.path(f).is_none());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn hard_links_share_one_inode() {
        let mut t = Inodes::new(1);
        let d = t.bind(ROOT, "d", 50, true);
        let f = t.bind(ROOT, "a", 51, false);
        // link: the new name is the same inode and now addresses it.
        assert_eq!(t.bind(d, "b", 51, false), f);
        assert_eq!(t.path(f).as_deref(), Some("d/b"));
        assert_eq!(t.child(ROOT, "a"), Some(f));
        // Unlink of the addressing name: the other one takes over.
        assert_eq!(t.detach(d, "b"), Some(f));
        assert_eq!(t.path(f).as_deref(), Some("a"));
        assert!(t.is_attached(f));
        // A stale addressing name is dropped while another remains.
        assert_eq!(t.bind(d, "c", 51, false), f);
        assert!(t.drop_stale_name(f));
        assert_eq!(t.path(f).as_deref(), Some("a"));
        assert!(!t.drop_stale_name(f));
        // Renaming one name over the other is a no-op (POSIX).
        t.bind(d, "c", 51, false);
        t.rename(d, "c", ROOT, "a");
        assert_eq!((t.child(d, "c"), t.child(ROOT, "a")), (Some(f), Some(f)));
        // Renamed over by another file: that name goes, the other stays.
        let g = t.bind(ROOT, "g", 52, false);
        t.rename(ROOT, "g", d, "c");
        assert_eq!(t.path(g).as_deref(), Some("d/c"));
        assert_eq!(t.path(f).as_deref(), Some("a"));
        t.detach(ROOT, "a");
        assert!(!t.is_attached(f));
        // A directory found under a new name moves.
        assert_eq!(t.bind(ROOT, "d2", 50, true), d);
        assert_eq!(t.child(ROOT, "d"), None);
        assert_eq!(t.path(g).as_deref(), Some("d2/c"));
        t.forget(f, 100);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn names_per_inode_are_bounded() {
        let mut t = Inodes::new(1);
        let f = t.bind(ROOT, "n0", 60, false);
        for i in 1..20 {
            assert_eq!(t.bind(ROOT, &format!("n{i}"), 60, false), f);
        }
        assert_eq!(t.child(ROOT, "n0"), None, "the oldest names are forgotten");
        assert_eq!(t.child(ROOT, "n19"), Some(f));
        assert_eq!(t.path(f).as_deref(), Some("n19"));
    }
}
