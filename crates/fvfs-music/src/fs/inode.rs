//! Inode numbers of the music view, derived from what they name so that they stay the
//! same across rescans, view rebuilds and restarts (a player's open file or a shell's
//! current directory survive a rescan that keeps the name).
//!
//! Layout (the top 4 bits say what the number is):
//! - `1` the mount's root, `2` `/.search`, `3` `/.collections`;
//! - `1 << 60 | view << 36 | dir`: directory `dir` of a view (dir ids are stable);
//! - `2 << 60 | view << 36 | dir`: the cover image of that directory;
//! - `3 << 60 | track`: a track (the same inode in every directory showing it);
//! - `4 << 60 | collection`: a saved collection's directory;
//! - `5 << 60 | n`: the n-th search directory looked up since the mount (a query's
//!   results, kept for the life of the mount).
//!
//! Invariant: `Node::from_ino(n.ino()) == Some(n)` for every node whose ids fit (view <
//! 2^24, dir < 2^36, others < 2^60); `from_ino` of any other number is None.

/// What an inode number names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    Root,
    SearchRoot,
    CollectionsRoot,
    Dir { view: u64, dir: u64 },
    Cover { view: u64, dir: u64 },
    Track(u64),
    Collection(u64),
    Search(u64),
}

const VIEW_BITS: u32 = 24;
const DIR_BITS: u32 = 36;
const LOW: u64 = (1 << 60) - 1;
const DIR_MASK: u64 = (1 << DIR_BITS) - 1;

impl Node {
    pub fn ino(self) -> u64 {
        match self {
            Node::Root => 1,
            Node::SearchRoot => 2,
            Node::CollectionsRoot => 3,
            Node::Dir { view, dir } => 1 << 60 | view << DIR_BITS | dir,
            Node::Cover { view, dir } => 2 << 60 | view << DIR_BITS | dir,
            Node::Track(t) => 3 << 60 | t,
            Node::Collection(c) => 4 << 60 | c,
            Node::Search(n) => 5 << 60 | n,
        }
    }

    pub fn from_ino(ino: u64) -> Option<Node> {
        let low = ino & LOW;
        let (view, dir) = ((low >> DIR_BITS), low & DIR_MASK);
        Some(match ino >> 60 {
            0 => match ino {
                1 => Node::Root,
                2 => Node::SearchRoot,
                3 => Node::CollectionsRoot,
                _ => return None,
            },
            1 if view < 1 << VIEW_BITS => Node::Dir { view, dir },
            2 if view < 1 << VIEW_BITS => Node::Cover { view, dir },
            3 => Node::Track(low),
            4 => Node::Collection(low),
            5 => Node::Search(low),
            _ => return None,
        })
    }

    /// Whether the ids fit the layout (a view or directory id too large for its bits
    /// would alias another inode).
    pub fn fits(self) -> bool {
        match self {
            Node::Dir { view, dir } | Node::Cover { view, dir } => {
                view < 1 << VIEW_BITS && dir <= DIR_MASK
            }
            Node::Track(n) | Node::Collection(n) | Node::Search(n) => n <= LOW,
            _ => true,
        }
    }

    pub fn is_dir(self) -> bool {
        !matches!(self, Node::Track(_) | Node::Cover { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_round_trips() {
        let nodes = [
            Node::Root,
            Node::SearchRoot,
            Node::CollectionsRoot,
            Node::Dir { view: 3, dir: 1 },
            Node::Dir {
                view: (1 << 24) - 1,
                dir: DIR_MASK,
            },
            Node::Cover { view: 2, dir: 99 },
            Node::Track(123_456),
            Node::Collection(7),
            Node::Search(1),
        ];
        for n in nodes {
            assert!(n.fits());
            assert_eq!(Node::from_ino(n.ino()), Some(n), "{n:?}");
        }
        assert_eq!(Node::from_ino(0), None);
        assert_eq!(Node::from_ino(4), None);
        assert_eq!(Node::from_ino(6 << 60), None);
        assert!(!Node::Dir {
            view: 1 << 24,
            dir: 1
        }
        .fits());
    }
}
