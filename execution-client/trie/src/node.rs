//! Trie nodes: nibble paths, insertion and removal, and the Ethereum RLP encoding.

use super::NodeReader;
use alloy_primitives::{keccak256, B256};
use alloy_rlp::Header;

/// Why a trie operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrieError {
    /// A node the trie refers to is not in the store (a corrupt or pruned database).
    #[error("trie node {0} is missing from the database")]
    MissingNode(B256),
    /// A stored node does not decode.
    #[error("malformed trie node: {0}")]
    Malformed(String),
    /// The store failed.
    #[error("trie store: {0}")]
    Store(String),
}

/// A path of nibbles (values 0–15).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nibbles(Vec<u8>);

impl Nibbles {
    /// The 64 nibbles of a 32-byte key.
    pub fn from_key(key: &B256) -> Self {
        Self(key.iter().flat_map(|b| [b >> 4, b & 0x0f]).collect())
    }
    /// Number of nibbles.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether the path is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The nibble at `i`.
    pub fn get(&self, i: usize) -> Option<u8> {
        self.0.get(i).copied()
    }
    /// The nibbles from `from` on.
    pub fn slice(&self, from: usize) -> Self {
        Self(self.0.get(from..).unwrap_or_default().to_vec())
    }
    fn prefix(&self, n: usize) -> Self {
        Self(self.0[..n].to_vec())
    }
    /// Whether `self` starts with `other`.
    pub fn starts_with(&self, other: &Self) -> bool {
        self.0.starts_with(&other.0)
    }
    fn common_prefix(&self, other: &Self) -> usize {
        self.0.iter().zip(&other.0).take_while(|(a, b)| a == b).count()
    }
    fn pushed_front(&self, n: u8) -> Self {
        let mut v = Vec::with_capacity(self.0.len() + 1);
        v.push(n);
        v.extend_from_slice(&self.0);
        Self(v)
    }
    fn concat(&self, other: &Self) -> Self {
        let mut v = self.0.clone();
        v.extend_from_slice(&other.0);
        Self(v)
    }

    /// Hex-prefix (compact) encoding, with the leaf flag.
    fn hp_encode(&self, leaf: bool) -> Vec<u8> {
        let flag = if leaf { 2 } else { 0 };
        let odd = self.0.len() % 2 == 1;
        let mut out = Vec::with_capacity(self.0.len() / 2 + 1);
        let rest = if odd {
            out.push(((flag + 1) << 4) | self.0[0]);
            &self.0[1..]
        } else {
            out.push(flag << 4);
            &self.0[..]
        };
        out.extend(rest.chunks_exact(2).map(|p| (p[0] << 4) | p[1]));
        out
    }

    fn hp_decode(bytes: &[u8]) -> Result<(Self, bool), TrieError> {
        let (&first, rest) = bytes.split_first().ok_or_else(|| malformed("empty hex-prefix path"))?;
        let flag = first >> 4;
        if flag > 3 {
            return Err(malformed("bad hex-prefix flag"));
        }
        let mut v = Vec::with_capacity(rest.len() * 2 + 1);
        if flag & 1 == 1 {
            v.push(first & 0x0f);
        } else if first & 0x0f != 0 {
            return Err(malformed("bad hex-prefix padding"));
        }
        v.extend(rest.iter().flat_map(|b| [b >> 4, b & 0x0f]));
        Ok((Self(v), flag & 2 == 2))
    }
}

fn malformed(what: &str) -> TrieError {
    TrieError::Malformed(what.to_string())
}

/// A node, loaded (and perhaps modified) or still only a reference by hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// No node.
    Empty,
    /// A stored node not loaded yet.
    Hash(B256),
    /// Remaining path and value.
    Leaf(Nibbles, Vec<u8>),
    /// Shared path and the child it leads to.
    Extension(Nibbles, Box<Node>),
    /// Sixteen children (no value: keys are fixed-length).
    Branch(Box<[Node; 16]>),
}

fn empty_children() -> Box<[Node; 16]> {
    Box::new(std::array::from_fn(|_| Node::Empty))
}

fn load(db: &impl NodeReader, h: B256) -> Result<Node, TrieError> {
    let rlp = db.node(&h)?.ok_or(TrieError::MissingNode(h))?;
    Node::decode(&rlp)
}

/// `node` with `path` set to `value`.
pub(super) fn insert(
    db: &impl NodeReader,
    node: Node,
    path: &Nibbles,
    value: Vec<u8>,
) -> Result<Node, TrieError> {
    Ok(match node {
        Node::Empty => Node::Leaf(path.clone(), value),
        Node::Hash(h) => insert(db, load(db, h)?, path, value)?,
        Node::Leaf(k, v) => {
            if k == *path {
                return Ok(Node::Leaf(k, value));
            }
            let p = k.common_prefix(path);
            let (Some(kn), Some(pn)) = (k.get(p), path.get(p)) else {
                return Err(malformed("keys of different lengths in one trie"));
            };
            let mut children = empty_children();
            children[kn as usize] = Node::Leaf(k.slice(p + 1), v);
            children[pn as usize] = Node::Leaf(path.slice(p + 1), value);
            wrap(k.prefix(p), Node::Branch(children))
        }
        Node::Extension(k, child) => {
            let p = k.common_prefix(path);
            if p == k.len() {
                return Ok(Node::Extension(k, Box::new(insert(db, *child, &path.slice(p), value)?)));
            }
            let Some(pn) = path.get(p) else { return Err(malformed("key ends inside an extension")) };
            let kn = k.0[p];
            let rest = k.slice(p + 1);
            let mut children = empty_children();
            children[kn as usize] = if rest.is_empty() { *child } else { Node::Extension(rest, child) };
            children[pn as usize] = Node::Leaf(path.slice(p + 1), value);
            wrap(k.prefix(p), Node::Branch(children))
        }
        Node::Branch(mut children) => {
            let Some(i) = path.get(0) else { return Err(malformed("key ends at a branch")) };
            let child = std::mem::replace(&mut children[i as usize], Node::Empty);
            children[i as usize] = insert(db, child, &path.slice(1), value)?;
            Node::Branch(children)
        }
    })
}

fn wrap(prefix: Nibbles, node: Node) -> Node {
    if prefix.is_empty() {
        node
    } else {
        Node::Extension(prefix, Box::new(node))
    }
}

/// `node` without `path`, and whether anything changed.
pub(super) fn remove(db: &impl NodeReader, node: Node, path: &Nibbles) -> Result<Node, TrieError> {
    Ok(remove_inner(db, node, path)?.0)
}

fn remove_inner(db: &impl NodeReader, node: Node, path: &Nibbles) -> Result<(Node, bool), TrieError> {
    Ok(match node {
        Node::Empty => (Node::Empty, false),
        Node::Hash(h) => {
            let (n, changed) = remove_inner(db, load(db, h)?, path)?;
            if changed {
                (n, true)
            } else {
                (Node::Hash(h), false)
            }
        }
        Node::Leaf(k, v) => {
            if k == *path {
                (Node::Empty, true)
            } else {
                (Node::Leaf(k, v), false)
            }
        }
        Node::Extension(k, child) => {
            if !path.starts_with(&k) {
                return Ok((Node::Extension(k, child), false));
            }
            let (c, changed) = remove_inner(db, *child, &path.slice(k.len()))?;
            if !changed {
                return Ok((Node::Extension(k, Box::new(c)), false));
            }
            let merged = match c {
                Node::Empty => Node::Empty,
                Node::Leaf(k2, v) => Node::Leaf(k.concat(&k2), v),
                Node::Extension(k2, cc) => Node::Extension(k.concat(&k2), cc),
                other => Node::Extension(k, Box::new(other)),
            };
            (merged, true)
        }
        Node::Branch(mut children) => {
            let Some(i) = path.get(0) else { return Err(malformed("key ends at a branch")) };
            let child = std::mem::replace(&mut children[i as usize], Node::Empty);
            let (c, changed) = remove_inner(db, child, &path.slice(1))?;
            children[i as usize] = c;
            if !changed {
                return Ok((Node::Branch(children), false));
            }
            (collapse(db, children)?, true)
        }
    })
}

/// A branch that may have lost a child: with one child left it becomes a leaf or extension.
fn collapse(db: &impl NodeReader, mut children: Box<[Node; 16]>) -> Result<Node, TrieError> {
    let live: Vec<usize> = children
        .iter()
        .enumerate()
        .filter(|(_, c)| !matches!(c, Node::Empty))
        .map(|(i, _)| i)
        .take(2)
        .collect();
    let only = match live[..] {
        [] => return Ok(Node::Empty),
        [one] => one,
        _ => return Ok(Node::Branch(children)),
    };
    let child = std::mem::replace(&mut children[only], Node::Empty);
    let nibble = only as u8;
    let (resolved, was_hash) = match child {
        Node::Hash(h) => (load(db, h)?, Some(h)),
        other => (other, None),
    };
    Ok(match resolved {
        Node::Leaf(k, v) => Node::Leaf(k.pushed_front(nibble), v),
        Node::Extension(k, c) => Node::Extension(k.pushed_front(nibble), c),
        branch => {
            let child = was_hash.map_or(branch, Node::Hash);
            Node::Extension(Nibbles(vec![nibble]), Box::new(child))
        }
    })
}

fn rlp_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    alloy_rlp::Encodable::encode(bytes, out);
}

fn rlp_list(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 3);
    Header { list: true, payload_length: payload.len() }.encode(&mut out);
    out.extend_from_slice(payload);
    out
}

/// Appends the reference to `node` (empty string, 32-byte hash, or the inline encoding of a
/// node shorter than 32 bytes), storing hashed nodes in `store`.
fn encode_ref(node: &Node, payload: &mut Vec<u8>, store: &mut Vec<(B256, Vec<u8>)>) {
    match node {
        Node::Empty => payload.push(0x80),
        Node::Hash(h) => rlp_bytes(payload, h.as_slice()),
        other => {
            let rlp = encode(other, store);
            if rlp.len() < 32 {
                payload.extend_from_slice(&rlp);
            } else {
                let h = keccak256(&rlp);
                rlp_bytes(payload, h.as_slice());
                store.push((h, rlp));
            }
        }
    }
}

/// The RLP encoding of a loaded node; hashed descendants are appended to `store`.
pub(super) fn encode(node: &Node, store: &mut Vec<(B256, Vec<u8>)>) -> Vec<u8> {
    let mut payload = Vec::new();
    match node {
        Node::Empty => return vec![0x80],
        Node::Hash(h) => {
            rlp_bytes(&mut payload, h.as_slice());
            return payload;
        }
        Node::Leaf(k, v) => {
            rlp_bytes(&mut payload, &k.hp_encode(true));
            rlp_bytes(&mut payload, v);
        }
        Node::Extension(k, c) => {
            rlp_bytes(&mut payload, &k.hp_encode(false));
            encode_ref(c, &mut payload, store);
        }
        Node::Branch(children) => {
            for c in children.iter() {
                encode_ref(c, &mut payload, store);
            }
            payload.push(0x80);
        }
    }
    rlp_list(&payload)
}

/// One RLP item: whether it is a list, its payload and its whole encoding.
fn next_item<'a>(buf: &mut &'a [u8]) -> Result<(bool, &'a [u8], &'a [u8]), TrieError> {
    let start = *buf;
    let h = Header::decode(buf).map_err(|e| TrieError::Malformed(e.to_string()))?;
    if buf.len() < h.payload_length {
        return Err(malformed("item longer than its node"));
    }
    let header_len = start.len() - buf.len();
    let payload = &buf[..h.payload_length];
    let raw = &start[..header_len + h.payload_length];
    *buf = &buf[h.payload_length..];
    Ok((h.list, payload, raw))
}

fn decode_ref(is_list: bool, payload: &[u8], raw: &[u8]) -> Result<Node, TrieError> {
    if is_list {
        return Node::decode(raw);
    }
    match payload.len() {
        0 => Ok(Node::Empty),
        32 => Ok(Node::Hash(B256::from_slice(payload))),
        _ => Err(malformed("child reference is neither empty, a hash nor a node")),
    }
}

impl Node {
    /// Decodes a node's RLP encoding.
    pub fn decode(rlp: &[u8]) -> Result<Self, TrieError> {
        let mut buf = rlp;
        let (is_list, mut payload, _) = next_item(&mut buf)?;
        if !is_list || !buf.is_empty() {
            return Err(malformed("a node is one RLP list"));
        }
        let mut items = Vec::with_capacity(17);
        while !payload.is_empty() {
            items.push(next_item(&mut payload)?);
        }
        match items.len() {
            2 => {
                let (path_is_list, path, _) = items[0];
                if path_is_list {
                    return Err(malformed("path must be a string"));
                }
                let (nibbles, leaf) = Nibbles::hp_decode(path)?;
                let (is_list, payload, raw) = items[1];
                if leaf {
                    if is_list {
                        return Err(malformed("leaf value must be a string"));
                    }
                    Ok(Node::Leaf(nibbles, payload.to_vec()))
                } else {
                    if nibbles.is_empty() {
                        return Err(malformed("empty extension"));
                    }
                    Ok(Node::Extension(nibbles, Box::new(decode_ref(is_list, payload, raw)?)))
                }
            }
            17 => {
                let mut children = empty_children();
                for (i, &(is_list, payload, raw)) in items[..16].iter().enumerate() {
                    children[i] = decode_ref(is_list, payload, raw)?;
                }
                if items[16].0 || !items[16].1.is_empty() {
                    return Err(malformed("branch values are not used in state tries"));
                }
                Ok(Node::Branch(children))
            }
            _ => Err(malformed("a node has 2 or 17 items")),
        }
    }
}
