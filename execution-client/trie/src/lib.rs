//! # qoin-trie
//!
//! Owns the Ethereum Merkle-Patricia trie of the execution client's state, updated
//! incrementally. It reads and writes nodes through [`NodeReader`] and the caller's
//! storage (MDBX in `qoin-el-storage`), never a database of its own.
//!
//!
//! Nodes are stored by hash (`keccak256(rlp(node))` → `rlp(node)`), the layout of a
//! hash-based (archive) trie: an update loads only the nodes on the paths of the keys it
//! changes, rewrites those paths and stores the new nodes, so its cost grows with the keys a
//! block touches and the depth of the trie, never with the size of the state. Old nodes stay,
//! so the trie at any earlier root is still readable: unwinding a block only needs the older
//! root (and proofs can be served at recent roots).
//!
//! Keys are 32 bytes (keccak256 of an address or a storage slot), so no key is a prefix of
//! another and branches carry no values. Nodes whose encoding is shorter than 32 bytes are
//! inlined in their parent, as Ethereum requires, so roots and proofs are the standard ones
//! (EIP-1186): any Ethereum tool can verify them.

mod node;

use alloy_primitives::{keccak256, B256};
pub use node::{Nibbles, Node, TrieError};

/// The root of the empty trie: `keccak256(rlp(""))`.
pub const EMPTY_ROOT: B256 =
    alloy_primitives::b256!("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421");

/// Where a trie reads stored nodes from (a transaction on the node table).
pub trait NodeReader {
    /// The encoding of the node with this hash, if stored.
    fn node(&self, hash: &B256) -> Result<Option<Vec<u8>>, TrieError>;
}

impl<F> NodeReader for F
where
    F: Fn(&B256) -> Result<Option<Vec<u8>>, TrieError>,
{
    fn node(&self, hash: &B256) -> Result<Option<Vec<u8>>, TrieError> {
        self(hash)
    }
}

/// A trie being updated: the untouched parts stay as hashes; touched paths are loaded and
/// modified in memory until [`Trie::commit`].
#[derive(Debug, Clone)]
pub struct Trie {
    root: Node,
}

impl Trie {
    /// The trie with root `root` (not loaded until touched).
    pub fn at(root: B256) -> Self {
        Self { root: if root == EMPTY_ROOT { Node::Empty } else { Node::Hash(root) } }
    }

    /// Sets `key` to `value` (a non-empty RLP-encoded value).
    pub fn insert(&mut self, db: &impl NodeReader, key: &B256, value: Vec<u8>) -> Result<(), TrieError> {
        let root = std::mem::replace(&mut self.root, Node::Empty);
        self.root = node::insert(db, root, &Nibbles::from_key(key), value)?;
        Ok(())
    }

    /// Removes `key` (absent keys are fine).
    pub fn remove(&mut self, db: &impl NodeReader, key: &B256) -> Result<(), TrieError> {
        let root = std::mem::replace(&mut self.root, Node::Empty);
        self.root = node::remove(db, root, &Nibbles::from_key(key))?;
        Ok(())
    }

    /// Hashes the modified paths and returns the new root with the nodes to store
    /// (`hash → encoding`). The trie is then at that root, fully unloaded.
    pub fn commit(&mut self) -> (B256, Vec<(B256, Vec<u8>)>) {
        let mut out = Vec::new();
        let root = std::mem::replace(&mut self.root, Node::Empty);
        let hash = match root {
            Node::Empty => EMPTY_ROOT,
            Node::Hash(h) => h,
            other => {
                let rlp = node::encode(&other, &mut out);
                let h = keccak256(&rlp);
                out.push((h, rlp));
                h
            }
        };
        self.root = if hash == EMPTY_ROOT { Node::Empty } else { Node::Hash(hash) };
        (hash, out)
    }
}

/// The value stored under `key` in the trie at `root`.
pub fn get(db: &impl NodeReader, root: B256, key: &B256) -> Result<Option<Vec<u8>>, TrieError> {
    Ok(walk(db, root, key)?.1)
}

/// A proof: the encodings of the nodes on a key's path from the root, and the value if present.
pub type Proof = (Vec<Vec<u8>>, Option<Vec<u8>>);

/// The EIP-1186 proof of `key` in the trie at `root`: the encodings of the nodes on its path
/// from the root (inline nodes are part of their parent), and the value if present.
pub fn proof(db: &impl NodeReader, root: B256, key: &B256) -> Result<Proof, TrieError> {
    walk(db, root, key)
}

/// [`proof`] of each of `keys` at `root`, in order. The nodes near the root lie on most keys'
/// paths (the root on all of them, each of its children on a sixteenth): each stored node is
/// read from `db` once for the whole call, not once per key. Its memory is bounded by the
/// nodes of the keys' paths.
pub fn proofs(db: &impl NodeReader, root: B256, keys: &[B256]) -> Result<Vec<Proof>, TrieError> {
    let memo = Memo { db, read: std::cell::RefCell::new(std::collections::HashMap::new()) };
    keys.iter().map(|key| walk(&memo, root, key)).collect()
}

/// A [`NodeReader`] that keeps what it read.
struct Memo<'a, R> {
    db: &'a R,
    read: std::cell::RefCell<std::collections::HashMap<B256, Vec<u8>>>,
}

impl<R: NodeReader> NodeReader for Memo<'_, R> {
    fn node(&self, hash: &B256) -> Result<Option<Vec<u8>>, TrieError> {
        if let Some(rlp) = self.read.borrow().get(hash) {
            return Ok(Some(rlp.clone()));
        }
        let rlp = self.db.node(hash)?;
        if let Some(rlp) = &rlp {
            self.read.borrow_mut().insert(*hash, rlp.clone());
        }
        Ok(rlp)
    }
}

fn walk(db: &impl NodeReader, root: B256, key: &B256) -> Result<Proof, TrieError> {
    let mut proof = Vec::new();
    if root == EMPTY_ROOT {
        return Ok((proof, None));
    }
    let path = Nibbles::from_key(key);
    let mut at = 0usize;
    let mut node = Node::Hash(root);
    loop {
        if let Node::Hash(h) = node {
            let rlp = db.node(&h)?.ok_or(TrieError::MissingNode(h))?;
            node = Node::decode(&rlp)?;
            proof.push(rlp);
        }
        match node {
            Node::Empty | Node::Hash(_) => return Ok((proof, None)),
            Node::Leaf(k, v) => return Ok((proof, (path.slice(at) == k).then_some(v))),
            Node::Extension(k, child) => {
                if !path.slice(at).starts_with(&k) {
                    return Ok((proof, None));
                }
                at += k.len();
                node = *child;
            }
            Node::Branch(mut children) => {
                let Some(n) = path.get(at) else { return Ok((proof, None)) };
                at += 1;
                node = std::mem::replace(&mut children[n as usize], Node::Empty);
            }
        }
    }
}

#[cfg(test)]
mod tests;
