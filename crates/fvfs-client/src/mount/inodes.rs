//! The mount's inode table: FUSE inode number → (parent, name) so that the path of any
//! inode the kernel knows can be built, plus the server inode it currently stands for.
//!
//! Invariants: FUSE inode 1 is the root. A FUSE inode number is the server's inode number
//! of the first object it was bound to (the root and any clash get a number from a
//! private range above 2^63), so numbers are never reused: server inode numbers never are.
//! A server inode is bound to at most one FUSE inode and a (parent, name) to at most one
//! inode. A `PUT` replaces a file by a new server inode: the mount re-binds the new
//! number to the same FUSE inode, so a file keeps its number across rewrites. An inode
//! unlinked or renamed over is *detached*: it has no path any more and path operations on
//! it fail with ENOENT. Nodes live until the kernel forgets its last lookup.

use std::collections::HashMap;

/// The FUSE inode number of the root.
pub const ROOT: u64 = 1;
/// First FUSE inode number handed out when a server number cannot be used as is.
const PRIVATE_BASE: u64 = 1 << 63;

#[derive(Debug)]
struct Node {
    parent: u64,
    name: String,
    /// Kernel references (entry replies minus forgets).
    nlookup: u64,
    /// The server inode this node currently stands for.
    server: u64,
    dir: bool,
    /// False once unlinked or replaced: the node has no path.
    attached: bool,
}

#[derive(Debug)]
pub struct Inodes {
    nodes: HashMap<u64, Node>,
    children: HashMap<(u64, String), u64>,
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
                parent: ROOT,
                name: String::new(),
                nlookup: 1,
                server: root_server,
                dir: true,
                attached: true,
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
            let n = self.nodes.get(&cur)?;
            if !n.attached {
                return None;
            }
            names.push(n.name.as_str());
            cur = n.parent;
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
        self.nodes.get(&ino).is_some_and(|n| n.attached)
    }

    /// Records an entry reply for `name` in `parent`, standing for server inode `server`:
    /// returns its FUSE inode and counts one kernel reference.
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
                    parent,
                    name: name.to_string(),
                    nlookup: 0,
                    server,
                    dir,
                    attached: true,
                },
            );
            ino
        };
        if ino != ROOT {
            self.place(ino, parent, name);
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

    /// Puts `ino` at (parent, name), detaching whatever was there.
    fn place(&mut self, ino: u64, parent: u64, name: &str) {
        let key = (parent, name.to_string());
        if let Some(&other) = self.children.get(&key) {
            if other == ino {
                if let Some(n) = self.nodes.get_mut(&ino) {
                    n.attached = true;
                }
                return;
            }
            if let Some(n) = self.nodes.get_mut(&other) {
                n.attached = false;
            }
        }
        if let Some(n) = self.nodes.get_mut(&ino) {
            if n.attached {
                let old = (n.parent, std::mem::take(&mut n.name));
                if self.children.get(&old) == Some(&ino) {
                    self.children.remove(&old);
                }
            }
        }
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.parent = parent;
            n.name = name.to_string();
            n.attached = true;
        }
        self.children.insert(key, ino);
    }

    /// The name `name` in `parent` is gone (unlink, rmdir): its inode is detached.
    pub fn detach(&mut self, parent: u64, name: &str) -> Option<u64> {
        let ino = self.children.remove(&(parent, name.to_string()))?;
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.attached = false;
        }
        Some(ino)
    }

    /// A rename succeeded: the inode at (parent, name), if known, moves to
    /// (newparent, newname); whatever was there is detached.
    pub fn rename(&mut self, parent: u64, name: &str, newparent: u64, newname: &str) {
        match self.children.get(&(parent, name.to_string())).copied() {
            Some(ino) => self.place(ino, newparent, newname),
            None => {
                self.detach(newparent, newname);
            }
        }
    }

    /// The kernel dropped `n` references to `ino`; the node goes with the last one.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT {
            return;
        }
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        node.nlookup = node.nlookup.saturating_sub(n);
        if node.nlookup > 0 {
            return;
        }
        let Some(node) = self.nodes.remove(&ino) else {
            return;
        };
        let key = (node.parent, node.name);
        if self.children.get(&key) == Some(&ino) {
            self.children.remove(&key);
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
}
