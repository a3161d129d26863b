//! The sync protocol's stream codec: each request and each response is one message, a 4-byte
//! big-endian length and that many bytes of protobuf ([`crate::wire`]). The length is
//! checked against the limit before anything is read, so a peer cannot make us buffer more.

use crate::wire::{Request, Response, WireError, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES};
use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use libp2p::StreamProtocol;
use std::io;

/// The sync protocol's id.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/qoin/sync/1");

/// The request-response codec of [`SYNC_PROTOCOL`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncCodec;

fn invalid(e: WireError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    what: &'static str,
    max: usize,
) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(invalid(WireError::TooLarge { what, got: len, max }));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.flush().await
}

impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_frame(io, "request", MAX_REQUEST_BYTES).await?;
        Request::decode(&bytes).map_err(invalid)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_frame(io, "response", MAX_RESPONSE_BYTES).await?;
        Response::decode(&bytes).map_err(invalid)
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Request) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req.encode()).await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, res: Response) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let bytes = res.encode().map_err(invalid)?;
        if bytes.len() > MAX_RESPONSE_BYTES {
            return Err(invalid(WireError::TooLarge {
                what: "response",
                got: bytes.len(),
                max: MAX_RESPONSE_BYTES,
            }));
        }
        write_frame(io, &bytes).await
    }
}
