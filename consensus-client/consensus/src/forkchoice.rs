//! Fork choice: GHOST, the heaviest subtree, over cumulative work, with "generations".
//!
//! A block may reference up to four siblings of its parent (same parent, same height). The
//! weight of a block's subtree is the work of every valid block in it plus the work of every
//! sibling referenced from inside it that is not itself inside it, each counted once. So a
//! referenced sibling's work supports the branch that references it. In practice a sibling
//! `s` referenced by block `b` (child of `p`) adds to the weights of `b` and `p` (above `p`,
//! `s` is inside the subtree already).
//!
//! The head: start at the root and repeatedly step to the child with the greatest weight
//! (ties: the lower hash, so every node picks the same one), skipping invalid blocks.
//!
//! **Layout (proto-array).** Blocks sit in a vector in insertion order, so a parent always
//! precedes its children; each keeps its subtree's work, its best child and its best
//! descendant. An insert adds its work along the path to the root and re-decides the best
//! child only where a weight on that path changed: O(depth) index steps, no hashing, and the
//! head is read in O(1). Marking a block invalid recomputes the whole tree in two linear
//! passes. The tree holds only the blocks above a root that [`ForkTree::prune`] moves up to
//! [`MAX_REORG_DEPTH`] below the head, so every cost is bounded by the window, not by the
//! chain's height: a fork from below the root cannot be expressed, which is the reorg bound.
//! Pure: no I/O; the chain store feeds it.

use alloy_primitives::{B256, U256};
use std::collections::HashMap;

/// Deepest reorganisation followed: a block whose branch leaves the canonical chain more than
/// this many blocks below the head is refused, and the tree is pruned to this depth.
pub const MAX_REORG_DEPTH: u64 = 1024;

#[derive(Debug, Clone)]
struct Node {
    hash: B256,
    parent: Option<usize>,
    height: u64,
    work: U256,
    siblings: Vec<B256>,
    children: Vec<usize>,
    /// Own work of the valid blocks in the subtree.
    sub: U256,
    /// Work of referenced siblings counted here (this block's references and its children's).
    extra: U256,
    /// The siblings counted in `extra`.
    counted: Vec<B256>,
    invalid: bool,
    best_child: Option<usize>,
    /// The head of this subtree (itself when no valid child).
    best_desc: usize,
}

impl Node {
    fn weight(&self) -> U256 {
        self.sub.saturating_add(self.extra)
    }
}

/// Why a block cannot join the tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForkError {
    /// Its parent is not in the tree (unknown, or below the root).
    #[error("unknown parent {0}")]
    UnknownParent(B256),
    /// A referenced sibling is not in the tree.
    #[error("unknown sibling {0}")]
    UnknownSibling(B256),
    /// Already in the tree.
    #[error("block {0} is already known")]
    Known(B256),
}

/// The tree of known blocks above a root (genesis, or the block [`ForkTree::prune`] left).
#[derive(Debug, Clone)]
pub struct ForkTree {
    nodes: Vec<Node>,
    index: HashMap<B256, usize>,
}

impl ForkTree {
    /// A tree holding only the root (genesis).
    pub fn new(root: B256) -> Self {
        Self::with_root(root, 0)
    }

    /// A tree holding only `root`, at `height`.
    pub fn with_root(root: B256, height: u64) -> Self {
        let node = Node {
            hash: root,
            parent: None,
            height,
            work: U256::ZERO,
            siblings: Vec::new(),
            children: Vec::new(),
            sub: U256::ZERO,
            extra: U256::ZERO,
            counted: Vec::new(),
            invalid: false,
            best_child: None,
            best_desc: 0,
        };
        Self { nodes: vec![node], index: HashMap::from([(root, 0)]) }
    }

    /// The root.
    pub fn root(&self) -> B256 {
        self.nodes[0].hash
    }

    /// The root's height.
    pub fn root_height(&self) -> u64 {
        self.nodes[0].height
    }

    /// Blocks in the tree, the root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether only the root is present.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    fn get(&self, hash: &B256) -> Option<&Node> {
        self.index.get(hash).map(|&i| &self.nodes[i])
    }

    /// Whether `hash` is in the tree.
    pub fn contains(&self, hash: &B256) -> bool {
        self.index.contains_key(hash)
    }

    /// Whether `hash` is in the tree and marked invalid (or descends from an invalid block).
    pub fn is_invalid(&self, hash: &B256) -> bool {
        self.get(hash).is_some_and(|n| n.invalid)
    }

    /// The weight of the subtree under `hash`.
    pub fn weight(&self, hash: &B256) -> Option<U256> {
        self.get(hash).map(Node::weight)
    }

    /// Height of `hash`.
    pub fn height(&self, hash: &B256) -> Option<u64> {
        self.get(hash).map(|n| n.height)
    }

    /// Children of `hash`.
    pub fn children(&self, hash: &B256) -> Vec<B256> {
        self.get(hash).map_or_else(Vec::new, |n| n.children.iter().map(|&c| self.nodes[c].hash).collect())
    }

    /// Whether child `a` beats child `b` (heavier; on a tie the lower hash).
    fn better(&self, a: usize, b: usize) -> bool {
        let (x, y) = (&self.nodes[a], &self.nodes[b]);
        match x.weight().cmp(&y.weight()) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => x.hash < y.hash,
        }
    }

    /// Counts sibling `s`'s work at node `at`, once.
    fn count_sibling(&mut self, at: usize, s: &B256) {
        let Some(sw) = self.get(s).filter(|n| !n.invalid).map(|n| n.work) else { return };
        let node = &mut self.nodes[at];
        if !node.counted.contains(s) {
            node.counted.push(*s);
            node.extra = node.extra.saturating_add(sw);
        }
    }

    /// Whether [`Self::insert`] would take the block; the parent's index if so.
    pub fn check_insert(&self, hash: &B256, parent: &B256, siblings: &[B256]) -> Result<usize, ForkError> {
        if self.index.contains_key(hash) {
            return Err(ForkError::Known(*hash));
        }
        let Some(&p) = self.index.get(parent) else { return Err(ForkError::UnknownParent(*parent)) };
        if p != 0 {
            if let Some(s) = siblings.iter().find(|s| !self.index.contains_key(*s)) {
                return Err(ForkError::UnknownSibling(*s));
            }
        }
        Ok(p)
    }

    /// Adds a block of `work` under `parent` referencing `siblings`. Every sibling must be in
    /// the tree, except under the root, whose own siblings may have been pruned (they count
    /// nothing).
    pub fn insert(
        &mut self,
        hash: B256,
        parent: B256,
        work: U256,
        siblings: &[B256],
    ) -> Result<(), ForkError> {
        let p = self.check_insert(&hash, &parent, siblings)?;
        let (height, invalid) = (self.nodes[p].height.saturating_add(1), self.nodes[p].invalid);
        let i = self.nodes.len();
        self.nodes.push(Node {
            hash,
            parent: Some(p),
            height,
            work,
            siblings: siblings.to_vec(),
            children: Vec::new(),
            sub: U256::ZERO,
            extra: U256::ZERO,
            counted: Vec::new(),
            invalid,
            best_child: None,
            best_desc: i,
        });
        self.index.insert(hash, i);
        self.nodes[p].children.push(i);
        if !invalid {
            self.nodes[i].sub = work;
            for s in siblings {
                self.count_sibling(i, s);
                self.count_sibling(p, s);
            }
            // Up the path: add the work, and re-decide the best child where the path child
            // gained (no other child's weight changed).
            let mut child = i;
            while let Some(a) = self.nodes[child].parent {
                self.nodes[a].sub = self.nodes[a].sub.saturating_add(work);
                let take = match self.nodes[a].best_child {
                    Some(b) => b == child || self.better(child, b),
                    None => true,
                };
                if take {
                    self.nodes[a].best_child = Some(child);
                    self.nodes[a].best_desc = self.nodes[child].best_desc;
                }
                child = a;
            }
        }
        Ok(())
    }

    /// Marks `hash` and its descendants invalid and recomputes the weights without them.
    pub fn mark_invalid(&mut self, hash: &B256) {
        self.mark_invalid_many(std::slice::from_ref(hash));
    }

    /// Marks each of `hashes` (those in the tree) and their descendants invalid, then
    /// recomputes the weights once.
    pub fn mark_invalid_many(&mut self, hashes: &[B256]) {
        let mut stack: Vec<usize> = hashes.iter().filter_map(|h| self.index.get(h).copied()).collect();
        if stack.is_empty() {
            return;
        }
        while let Some(i) = stack.pop() {
            self.nodes[i].invalid = true;
            stack.extend(self.nodes[i].children.iter().copied());
        }
        self.recompute();
    }

    /// Weights, counted siblings and best children from scratch, in two linear passes
    /// (parents precede children in the vector).
    fn recompute(&mut self) {
        for (i, n) in self.nodes.iter_mut().enumerate() {
            n.sub = if n.invalid || n.parent.is_none() { U256::ZERO } else { n.work };
            n.extra = U256::ZERO;
            n.counted.clear();
            n.best_child = None;
            n.best_desc = i;
        }
        for i in 1..self.nodes.len() {
            if self.nodes[i].invalid {
                continue;
            }
            let Some(p) = self.nodes[i].parent else { continue };
            let siblings = std::mem::take(&mut self.nodes[i].siblings);
            for s in &siblings {
                self.count_sibling(i, s);
                self.count_sibling(p, s);
            }
            self.nodes[i].siblings = siblings;
        }
        for i in (1..self.nodes.len()).rev() {
            if self.nodes[i].invalid {
                continue;
            }
            let Some(p) = self.nodes[i].parent else { continue };
            self.nodes[p].sub = self.nodes[p].sub.saturating_add(self.nodes[i].sub);
        }
        // Children come after their parents: by the time `i` is offered to its parent, every
        // child of `i` has been offered to `i`.
        for i in (1..self.nodes.len()).rev() {
            if self.nodes[i].invalid {
                continue;
            }
            let Some(p) = self.nodes[i].parent else { continue };
            let take = self.nodes[p].best_child.is_none_or(|b| self.better(i, b));
            if take {
                self.nodes[p].best_child = Some(i);
                self.nodes[p].best_desc = self.nodes[i].best_desc;
            }
        }
    }

    /// The head: from the root, the heaviest valid child at every step (ties: lower hash).
    pub fn head(&self) -> B256 {
        self.nodes[self.nodes[0].best_desc].hash
    }

    /// Siblings of `hash` (same parent, other than itself), valid ones only.
    pub fn siblings_of(&self, hash: &B256) -> Vec<B256> {
        let Some(n) = self.get(hash) else { return Vec::new() };
        let Some(p) = n.parent else { return Vec::new() };
        self.nodes[p]
            .children
            .iter()
            .map(|&c| &self.nodes[c])
            .filter(|c| c.hash != *hash && !c.invalid)
            .map(|c| c.hash)
            .collect()
    }

    /// The chain from the root to `hash` (inclusive), or empty if unknown.
    pub fn path_to(&self, hash: &B256) -> Vec<B256> {
        let Some(&i) = self.index.get(hash) else { return Vec::new() };
        let mut out = vec![self.nodes[i].hash];
        let mut cursor = i;
        while let Some(p) = self.nodes[cursor].parent {
            out.push(self.nodes[p].hash);
            cursor = p;
        }
        out.reverse();
        out
    }

    /// `hash`'s ancestor at `height` (itself at its own height), if both are in the tree.
    pub fn ancestor_at(&self, hash: &B256, height: u64) -> Option<B256> {
        let mut i = *self.index.get(hash)?;
        while self.nodes[i].height > height {
            i = self.nodes[i].parent?;
        }
        (self.nodes[i].height == height).then_some(self.nodes[i].hash)
    }

    /// Makes `new_root` the root, dropping every block that does not descend from it (the old
    /// root and the chain up to `new_root` among them). Returns the dropped blocks with their
    /// heights; nothing happens if `new_root` is not in the tree.
    pub fn prune(&mut self, new_root: &B256) -> Vec<(B256, u64)> {
        let Some(&r) = self.index.get(new_root) else { return Vec::new() };
        if r == 0 {
            return Vec::new();
        }
        let n = self.nodes.len();
        let mut keep = vec![false; n];
        keep[r] = true;
        for i in r + 1..n {
            keep[i] = self.nodes[i].parent.is_some_and(|p| keep[p]);
        }
        let mut remap = vec![usize::MAX; n];
        let mut next = 0;
        for (i, k) in keep.iter().enumerate() {
            if *k {
                remap[i] = next;
                next += 1;
            }
        }
        let mut dropped = Vec::with_capacity(n - next);
        let old = std::mem::take(&mut self.nodes);
        self.index.clear();
        for (i, mut node) in old.into_iter().enumerate() {
            if !keep[i] {
                dropped.push((node.hash, node.height));
                continue;
            }
            node.parent = if i == r { None } else { node.parent.map(|p| remap[p]) };
            node.children = node.children.iter().filter(|c| keep[**c]).map(|c| remap[*c]).collect();
            self.index.insert(node.hash, self.nodes.len());
            self.nodes.push(node);
        }
        // The new root's own siblings are gone: recount so that weights are what a reload of
        // the same blocks gives.
        self.recompute();
        dropped
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

    /// Weights and head of `t` as a from-scratch recomputation gives them.
    fn recomputed(t: &ForkTree) -> (Vec<(B256, U256)>, B256) {
        let mut r = t.clone();
        r.recompute();
        (r.nodes.iter().map(|n| (n.hash, n.weight())).collect(), r.head())
    }

    /// The head as the specification states it: from the root, the heaviest valid child.
    fn walked_head(t: &ForkTree) -> B256 {
        let mut cursor = t.root();
        loop {
            let best = t
                .children(&cursor)
                .into_iter()
                .filter(|c| !t.is_invalid(c))
                .max_by(|a, b| t.weight(a).cmp(&t.weight(b)).then(b.cmp(a)));
            match best {
                Some(c) => cursor = c,
                None => return cursor,
            }
        }
    }

    proptest::proptest! {
        /// A random tree with forks, sibling references and invalid marks: the incremental
        /// weights and head equal a from-scratch recount and the walk from the root.
        #[test]
        fn incremental_updates_agree_with_a_recount(
            steps in proptest::collection::vec((0usize..64, 1u64..50, 0usize..3, 0u8..20), 1..120)
        ) {
            let mut t = ForkTree::new(h(0));
            let mut all = vec![h(0)];
            for (k, (pick, work, nsib, inv)) in steps.into_iter().enumerate() {
                let parent = all[pick % all.len()];
                let mut hb = [0u8; 32];
                hb[..8].copy_from_slice(&(k as u64 + 1).to_be_bytes());
                let hash = B256::from(hb);
                // Siblings of the parent, as a miner would reference them.
                let sibs: Vec<B256> = t.siblings_of(&parent).into_iter().take(nsib).collect();
                t.insert(hash, parent, w(work), &sibs).unwrap();
                all.push(hash);
                if inv == 0 {
                    t.mark_invalid(&hash);
                }
                let (weights, head) = recomputed(&t);
                for (hash, weight) in weights {
                    proptest::prop_assert_eq!(t.weight(&hash), Some(weight));
                }
                proptest::prop_assert_eq!(t.head(), head);
                proptest::prop_assert_eq!(t.head(), walked_head(&t));
            }
        }
    }

    #[test]
    fn pruning_keeps_the_root_subtree_and_reloads_to_the_same_choice() {
        // 0 → 1 → 2 → 3 → 4, with a side branch 1 → 9 and 2 → 8 (8 a sibling of 3, named by 4).
        let mut t = ForkTree::new(h(0));
        t.insert(h(1), h(0), w(10), &[]).unwrap();
        t.insert(h(9), h(1), w(10), &[]).unwrap();
        t.insert(h(2), h(1), w(10), &[]).unwrap();
        t.insert(h(3), h(2), w(10), &[]).unwrap();
        t.insert(h(8), h(2), w(10), &[]).unwrap();
        t.insert(h(4), h(3), w(10), &[h(8)]).unwrap();
        t.insert(h(5), h(4), w(10), &[]).unwrap();
        assert_eq!(t.head(), h(5));
        assert_eq!(t.ancestor_at(&h(5), 2), Some(h(2)));
        assert_eq!(t.ancestor_at(&h(5), 9), None);
        let mut dropped = t.prune(&h(2));
        dropped.sort();
        assert_eq!(dropped, vec![(h(0), 0), (h(1), 1), (h(9), 2)]);
        assert_eq!((t.root(), t.root_height(), t.len()), (h(2), 2, 5));
        assert_eq!(t.head(), h(5));
        assert_eq!(t.path_to(&h(5)), vec![h(2), h(3), h(4), h(5)]);
        assert!(!t.contains(&h(9)));
        assert_eq!(t.insert(h(7), h(1), w(99), &[]), Err(ForkError::UnknownParent(h(1))), "below the root");
        // Reloading the same blocks above the new root gives the same weights and head.
        let mut r = ForkTree::with_root(h(2), 2);
        for (hash, parent, sibs) in
            [(h(3), h(2), vec![]), (h(8), h(2), vec![]), (h(4), h(3), vec![h(8)]), (h(5), h(4), vec![])]
        {
            r.insert(hash, parent, w(10), &sibs).unwrap();
        }
        for x in [h(2), h(3), h(4), h(5), h(8)] {
            assert_eq!(r.weight(&x), t.weight(&x), "{x}");
        }
        assert_eq!(r.head(), t.head());
        // Under a pruned root, siblings of the root may be gone: they count nothing.
        let mut u = ForkTree::with_root(h(3), 3);
        u.insert(h(4), h(3), w(10), &[h(8)]).unwrap();
        assert_eq!(u.weight(&h(4)), Some(w(10)));
    }
}
