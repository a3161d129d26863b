//! Fork choice: GHOST, the heaviest subtree, over cumulative work, with "generations".
//!
//! A block may reference up to four siblings of its parent (same parent, same height). The
//! weight of a block's subtree is the work of every valid block in it plus the work of every
//! sibling referenced from inside it that is not itself inside it, each counted once. So a
//! referenced sibling's work supports the branch that references it. In practice a sibling
//! `s` referenced by block `b` (child of `p`) adds to the weights of `b` and `p` (above `p`,
//! `s` is inside the subtree already).
//!
//! The head: start at the root (genesis) and repeatedly step to the child with the greatest
//! weight (ties: the lower hash, so every node picks the same one), skipping invalid blocks.
//! Pure: no I/O; the chain store feeds it.

use alloy_primitives::{B256, U256};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone)]
struct Node {
    parent: B256,
    height: u64,
    work: U256,
    siblings: Vec<B256>,
    children: Vec<B256>,
    weight: U256,
    counted: HashSet<B256>,
    invalid: bool,
}

/// Why a block cannot join the tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForkError {
    /// Its parent is not in the tree.
    #[error("unknown parent {0}")]
    UnknownParent(B256),
    /// A referenced sibling is not in the tree.
    #[error("unknown sibling {0}")]
    UnknownSibling(B256),
    /// Already in the tree.
    #[error("block {0} is already known")]
    Known(B256),
}

/// The tree of known blocks from genesis.
#[derive(Debug, Clone)]
pub struct ForkTree {
    root: B256,
    nodes: HashMap<B256, Node>,
}

impl ForkTree {
    /// A tree holding only the root (genesis).
    pub fn new(root: B256) -> Self {
        let node = Node {
            parent: B256::ZERO,
            height: 0,
            work: U256::ZERO,
            siblings: Vec::new(),
            children: Vec::new(),
            weight: U256::ZERO,
            counted: HashSet::new(),
            invalid: false,
        };
        Self { root, nodes: HashMap::from([(root, node)]) }
    }

    /// The root.
    pub fn root(&self) -> B256 {
        self.root
    }

    /// Blocks in the tree, the root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether only the root is present.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// Whether `hash` is in the tree.
    pub fn contains(&self, hash: &B256) -> bool {
        self.nodes.contains_key(hash)
    }

    /// Whether `hash` is in the tree and marked invalid (or descends from an invalid block).
    pub fn is_invalid(&self, hash: &B256) -> bool {
        self.nodes.get(hash).is_some_and(|n| n.invalid)
    }

    /// The weight of the subtree under `hash`.
    pub fn weight(&self, hash: &B256) -> Option<U256> {
        self.nodes.get(hash).map(|n| n.weight)
    }

    /// Height of `hash`.
    pub fn height(&self, hash: &B256) -> Option<u64> {
        self.nodes.get(hash).map(|n| n.height)
    }

    /// Children of `hash`.
    pub fn children(&self, hash: &B256) -> &[B256] {
        self.nodes.get(hash).map_or(&[], |n| &n.children)
    }

    /// Adds a block of `work` under `parent` referencing `siblings`.
    pub fn insert(
        &mut self,
        hash: B256,
        parent: B256,
        work: U256,
        siblings: &[B256],
    ) -> Result<(), ForkError> {
        if self.nodes.contains_key(&hash) {
            return Err(ForkError::Known(hash));
        }
        let (height, invalid) = match self.nodes.get(&parent) {
            Some(p) => (p.height + 1, p.invalid),
            None => return Err(ForkError::UnknownParent(parent)),
        };
        if let Some(s) = siblings.iter().find(|s| !self.nodes.contains_key(*s)) {
            return Err(ForkError::UnknownSibling(*s));
        }
        if let Some(p) = self.nodes.get_mut(&parent) {
            p.children.push(hash);
        }
        self.nodes.insert(
            hash,
            Node {
                parent,
                height,
                work,
                siblings: siblings.to_vec(),
                children: Vec::new(),
                weight: U256::ZERO,
                counted: HashSet::new(),
                invalid,
            },
        );
        if !invalid {
            self.add_weights(hash);
        }
        Ok(())
    }

    /// Adds `hash`'s own work to it and its ancestors, and its referenced siblings' work to
    /// it and its parent (once per node).
    fn add_weights(&mut self, hash: B256) {
        let Some(n) = self.nodes.get(&hash) else { return };
        let (work, parent, siblings) = (n.work, n.parent, n.siblings.clone());
        let mut cursor = Some(hash);
        while let Some(h) = cursor {
            match self.nodes.get_mut(&h) {
                Some(node) => {
                    node.weight += work;
                    cursor = (h != self.root).then_some(node.parent);
                }
                None => break,
            }
        }
        for s in siblings {
            let Some(sw) = self.nodes.get(&s).filter(|n| !n.invalid).map(|n| n.work) else { continue };
            for target in [hash, parent] {
                if let Some(node) = self.nodes.get_mut(&target) {
                    if node.counted.insert(s) {
                        node.weight += sw;
                    }
                }
            }
        }
    }

    /// Marks `hash` and its descendants invalid and recomputes the weights without them.
    pub fn mark_invalid(&mut self, hash: &B256) {
        let mut stack = vec![*hash];
        while let Some(h) = stack.pop() {
            if let Some(n) = self.nodes.get_mut(&h) {
                n.invalid = true;
                stack.extend(n.children.iter().copied());
            }
        }
        self.recompute();
    }

    fn recompute(&mut self) {
        let mut order: Vec<(u64, B256)> = self.nodes.iter().map(|(h, n)| (n.height, *h)).collect();
        order.sort();
        for n in self.nodes.values_mut() {
            n.weight = U256::ZERO;
            n.counted.clear();
        }
        for (_, h) in order {
            if h != self.root && self.nodes.get(&h).is_some_and(|n| !n.invalid) {
                self.add_weights(h);
            }
        }
    }

    /// The head: from the root, the heaviest valid child at every step (ties: lower hash).
    pub fn head(&self) -> B256 {
        let mut cursor = self.root;
        loop {
            let Some(node) = self.nodes.get(&cursor) else { return cursor };
            let best = node
                .children
                .iter()
                .filter_map(|c| self.nodes.get(c).filter(|n| !n.invalid).map(|n| (n.weight, *c)))
                .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            match best {
                Some((_, c)) => cursor = c,
                None => return cursor,
            }
        }
    }

    /// Siblings of `hash` (same parent, other than itself), valid ones only.
    pub fn siblings_of(&self, hash: &B256) -> Vec<B256> {
        let Some(n) = self.nodes.get(hash) else { return Vec::new() };
        if *hash == self.root {
            return Vec::new();
        }
        self.children(&n.parent).iter().copied().filter(|c| c != hash && !self.is_invalid(c)).collect()
    }

    /// The chain from the root to `hash` (inclusive), or empty if unknown.
    pub fn path_to(&self, hash: &B256) -> Vec<B256> {
        let mut out = Vec::new();
        let mut cursor = *hash;
        while let Some(n) = self.nodes.get(&cursor) {
            out.push(cursor);
            if cursor == self.root {
                out.reverse();
                return out;
            }
            cursor = n.parent;
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u8) -> B256 {
        B256::repeat_byte(i)
    }

    fn w(x: u64) -> U256 {
        U256::from(x)
    }

    #[test]
    fn the_longest_chain_wins_when_work_is_equal() {
        let mut t = ForkTree::new(h(0));
        t.insert(h(1), h(0), w(10), &[]).unwrap();
        t.insert(h(2), h(1), w(10), &[]).unwrap();
        t.insert(h(3), h(0), w(10), &[]).unwrap();
        assert_eq!(t.head(), h(2));
        assert_eq!(t.weight(&h(0)), Some(w(30)));
        assert_eq!(t.path_to(&h(2)), vec![h(0), h(1), h(2)]);
    }

    #[test]
    fn ghost_prefers_the_heavier_subtree_over_the_longer_chain() {
        // Root → A (10) → A1, A2, A3 (10 each, forks); root → B (10) → B1 (10) → B2 (10) → B3.
        // Longest chain is B (4 blocks, 40); GHOST picks A's subtree (40 vs 40 + tie?) — make
        // A's heavier: four children.
        let mut t = ForkTree::new(h(0));
        t.insert(h(0xa0), h(0), w(10), &[]).unwrap();
        for i in 1..=4 {
            t.insert(h(0xa0 + i), h(0xa0), w(10), &[]).unwrap();
        }
        t.insert(h(0xb0), h(0), w(10), &[]).unwrap();
        t.insert(h(0xb1), h(0xb0), w(10), &[]).unwrap();
        t.insert(h(0xb2), h(0xb1), w(10), &[]).unwrap();
        t.insert(h(0xb3), h(0xb2), w(10), &[]).unwrap();
        assert_eq!(t.weight(&h(0xa0)), Some(w(50)));
        assert_eq!(t.weight(&h(0xb0)), Some(w(40)));
        let head = t.head();
        assert_eq!(t.path_to(&head)[1], h(0xa0), "the heavier subtree, though its chain is shorter");
        assert_eq!(head, h(0xa1), "equal children: the lower hash");
    }

    #[test]
    fn referenced_siblings_count_toward_the_referencing_branch_once() {
        // G → P, S (siblings, height 1). P → B references S; P → C references S too.
        // G → Q → R: a rival chain of equal own work to P's branch.
        let mut t = ForkTree::new(h(0));
        t.insert(h(1), h(0), w(10), &[]).unwrap(); // P
        t.insert(h(2), h(0), w(10), &[]).unwrap(); // S
        t.insert(h(3), h(0), w(10), &[]).unwrap(); // Q
        t.insert(h(4), h(3), w(10), &[]).unwrap(); // R (child of Q)
        t.insert(h(5), h(4), w(10), &[]).unwrap(); // R2
        assert_eq!(t.head(), h(5), "Q's branch: 30 against P's 10 and S's 10");
        t.insert(h(6), h(1), w(10), &[h(2)]).unwrap(); // B references S
        assert_eq!(t.weight(&h(6)), Some(w(20)));
        assert_eq!(t.weight(&h(1)), Some(w(30)), "P: itself, B, and S through B");
        t.insert(h(7), h(1), w(10), &[h(2)]).unwrap(); // C references S as well
        assert_eq!(t.weight(&h(1)), Some(w(40)), "S counted once in P's subtree");
        assert_eq!(t.weight(&h(0)), Some(w(70)), "above P, S is inside the subtree: no double count");
        assert_eq!(t.path_to(&t.head())[1], h(1), "P's generation now outweighs Q's chain");
        assert_eq!(t.siblings_of(&h(1)), vec![h(2), h(3)]);
    }

    #[test]
    fn invalid_blocks_and_their_descendants_lose_their_weight() {
        let mut t = ForkTree::new(h(0));
        t.insert(h(1), h(0), w(10), &[]).unwrap();
        t.insert(h(2), h(1), w(10), &[]).unwrap();
        t.insert(h(3), h(0), w(10), &[]).unwrap();
        assert_eq!(t.head(), h(2));
        t.mark_invalid(&h(1));
        assert!(t.is_invalid(&h(2)));
        assert_eq!(t.head(), h(3));
        assert_eq!(t.weight(&h(0)), Some(w(10)));
        t.insert(h(4), h(2), w(100), &[]).unwrap();
        assert!(t.is_invalid(&h(4)), "a child of an invalid block is invalid");
        assert_eq!(t.head(), h(3));
    }

    #[test]
    fn unknown_parents_and_siblings_are_refused() {
        let mut t = ForkTree::new(h(0));
        assert_eq!(t.insert(h(1), h(9), w(1), &[]), Err(ForkError::UnknownParent(h(9))));
        t.insert(h(1), h(0), w(1), &[]).unwrap();
        assert_eq!(t.insert(h(2), h(1), w(1), &[h(8)]), Err(ForkError::UnknownSibling(h(8))));
        assert_eq!(t.insert(h(1), h(0), w(1), &[]), Err(ForkError::Known(h(1))));
        assert_eq!(t.len(), 2);
    }
}
