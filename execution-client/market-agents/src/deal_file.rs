//! A storage deal's coded file as a provider keeps it: on disk, with only its Merkle tree in
//! memory (about 64 bytes per 1,024-byte chunk), so a provider's memory does not grow with
//! the data it stores. Uploads are written to disk as they arrive and hashed chunk by chunk;
//! challenged and retrieved chunks are read back from disk.

use alloy_primitives::B256;
use axum::body::Bytes;
use qoin_markets::storage::{leaf, Answer, ChunkTree, CHUNK_SIZE};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Why an upload is not the deal's file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// More bytes than the deal's chunks hold.
    #[error("more than the deal's {0} bytes")]
    TooLong(u64),
    /// Fewer chunks than the deal's (the upload was cut short).
    #[error("{got} bytes for a deal of {chunks} chunks ({want} bytes)")]
    Short {
        /// Bytes received.
        got: u64,
        /// The deal's chunks.
        chunks: u64,
        /// The deal's size.
        want: u64,
    },
    /// The chunks do not hash to the deal's root.
    #[error("the data's Merkle root is not the deal's")]
    WrongRoot,
    /// Reading the upload or writing the disk failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A deal's file on disk and its tree.
pub struct DealFile {
    file: File,
    tree: ChunkTree,
}

impl DealFile {
    /// Writes what `source` yields to `path` (through `path.tmp`, synced and renamed) if it is
    /// the file of `chunks` chunks under `root`: at most `chunks × CHUNK_SIZE` bytes, the last
    /// chunk complete or not (it is zero-padded). Nothing is left at `path` otherwise.
    pub fn write(path: &Path, mut source: impl Read, chunks: u64, root: B256) -> Result<Self, FileError> {
        let want = chunks.saturating_mul(CHUNK_SIZE as u64);
        let tmp = path.with_extension("tmp");
        let mut out = BufWriter::new(File::create(&tmp)?);
        let written = (|| {
            let mut leaves = Vec::with_capacity(usize::try_from(chunks).unwrap_or(0).min(1 << 24));
            let mut got = 0u64;
            let mut chunk = vec![0u8; CHUNK_SIZE];
            loop {
                let n = read_full(&mut source, &mut chunk)?;
                if n == 0 {
                    break;
                }
                got += n as u64;
                if got > want {
                    return Err(FileError::TooLong(want));
                }
                chunk[n..].fill(0);
                out.write_all(&chunk)?;
                leaves.push(leaf(&chunk).0);
                if n < CHUNK_SIZE {
                    // A short read ends the file: anything after it is too much.
                    if read_full(&mut source, &mut [0u8; 1])? > 0 {
                        return Err(FileError::TooLong(want));
                    }
                    break;
                }
            }
            if leaves.len() as u64 != chunks {
                return Err(FileError::Short { got, chunks, want });
            }
            let tree = ChunkTree::from_leaves(&leaves).map_err(|_| FileError::Short { got, chunks, want })?;
            if tree.root() != root {
                return Err(FileError::WrongRoot);
            }
            out.flush()?;
            out.get_ref().sync_all()?;
            Ok(tree)
        })();
        let tree = match written {
            Ok(tree) => tree,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        std::fs::rename(&tmp, path)?;
        Ok(Self { file: File::open(path)?, tree })
    }

    /// Opens the file at `path`, rebuilding its tree from its chunks; `None` if it is not the
    /// file of `chunks` chunks under `root`.
    pub fn open(path: &Path, chunks: u64, root: B256) -> Option<Self> {
        let file = File::open(path).ok()?;
        if file.metadata().ok()?.len() != chunks.checked_mul(CHUNK_SIZE as u64)? {
            return None;
        }
        let mut reader = std::io::BufReader::with_capacity(1 << 20, &file);
        let mut leaves = Vec::with_capacity(usize::try_from(chunks).ok()?);
        let mut chunk = vec![0u8; CHUNK_SIZE];
        for _ in 0..chunks {
            reader.read_exact(&mut chunk).ok()?;
            leaves.push(leaf(&chunk).0);
        }
        let tree = ChunkTree::from_leaves(&leaves).ok()?;
        (tree.root() == root).then_some(Self { file, tree })
    }

    /// Its chunks.
    pub fn chunks(&self) -> u64 {
        self.tree.chunks()
    }

    /// Chunk `i`, read from disk.
    pub fn chunk(&self, i: u64) -> std::io::Result<Vec<u8>> {
        if i >= self.chunks() {
            return Err(std::io::Error::other(format!("chunk {i} is beyond the file")));
        }
        let mut chunk = vec![0u8; CHUNK_SIZE];
        self.file.read_exact_at(&mut chunk, i * CHUNK_SIZE as u64)?;
        Ok(chunk)
    }

    /// Chunk `i`'s Merkle path.
    pub fn path(&self, i: u64) -> anyhow::Result<Vec<B256>> {
        Ok(self.tree.path(i)?)
    }

    /// The chunks and paths that answer a period's challenges.
    pub fn answer(&self, indices: &[u64]) -> anyhow::Result<Answer> {
        let mut answer =
            Answer { data: Vec::with_capacity(indices.len()), paths: Vec::with_capacity(indices.len()) };
        for &i in indices {
            answer.data.push(self.chunk(i)?);
            answer.paths.push(self.path(i)?);
        }
        Ok(answer)
    }
}

/// Fills `buf` from `source` as far as it goes; the bytes read (fewer only at its end).
fn read_full(source: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match source.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A blocking reader of the frames an async task sends it (an HTTP body read on the runtime
/// and written to disk on the blocking pool): an error frame ends it with that error.
pub struct FrameReader {
    frames: tokio::sync::mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
}

impl FrameReader {
    /// A reader of what arrives on `frames`; it ends when the sender is dropped.
    pub fn new(frames: tokio::sync::mpsc::Receiver<Result<Bytes, String>>) -> Self {
        Self { frames, current: Bytes::new() }
    }
}

impl Read for FrameReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.frames.blocking_recv() {
                None => return Ok(0),
                Some(Ok(frame)) => self.current = frame,
                Some(Err(why)) => return Err(std::io::Error::other(why)),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qoin_markets::storage::ChunkedFile;

    #[test]
    fn an_upload_is_kept_only_whole_and_under_its_root() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let reference = ChunkedFile::new(data.clone()).unwrap();
        let (chunks, root) = (reference.chunks(), reference.root());
        let path = dir.path().join("1.bin");
        let err = |bytes: &[u8], root| DealFile::write(&path, bytes, chunks, root).err().unwrap().to_string();
        assert!(err(&data[..9_000], root).contains("bytes for a deal of"), "cut short");
        assert!(err(&[data.as_slice(), &[0; 1_300]].concat(), root).contains("more than"), "too long");
        assert!(err(&data, B256::repeat_byte(1)).contains("root"), "another file");
        assert!(!path.exists() && !path.with_extension("tmp").exists(), "nothing refused was kept");
        // The file whole, or padded as the client sends it: kept, and read back as committed.
        for upload in [data, reference.bytes().to_vec()] {
            let file = DealFile::write(&path, upload.as_slice(), chunks, root).unwrap();
            assert_eq!(file.chunk(9).unwrap(), reference.chunk(9).unwrap());
            assert_eq!(file.path(3).unwrap(), reference.path(3).unwrap());
            assert!(file.chunk(10).is_err());
        }
        let reopened = DealFile::open(&path, chunks, root).unwrap();
        assert_eq!(reopened.answer(&[0, 9]).unwrap().data, reference.answer(&[0, 9]).unwrap().data);
        assert!(DealFile::open(&path, chunks, B256::ZERO).is_none(), "opened only under its root");
    }
}
