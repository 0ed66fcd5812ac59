//! The S3 operations of the test server: `s3s-fs` for every operation, with the body of
//! `GetObject` read in 256 KiB pieces instead of s3s-fs's 4 KiB ones.
//!
//! s3s-fs reads a GET's file 4 KiB at a time through `tokio::fs`, one blocking-pool hop
//! per piece; a 1 MiB block then takes 256 hops and tens of milliseconds on loopback,
//! which made the test server, not the client, the bottleneck of every recall benchmark.
//! Here s3s-fs still answers the request (authorisation, range checks, headers, ETag),
//! and only its body is replaced by a stream over the same bytes of the same file.
//!
//! Invariant: the replacement body has exactly the bytes s3s-fs would send. The file is
//! opened again and its length must equal the object length s3s-fs reported; otherwise
//! (the object was replaced in between) s3s-fs's own body is sent.

use s3s::dto::{GetObjectInput, GetObjectOutput, StreamingBlob};
use s3s::{S3Request, S3Response, S3Result, S3};
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Bytes per read of a GET body.
const PIECE: usize = 256 << 10;

/// s3s-fs with a faster `GetObject` body.
pub(crate) struct FsStore {
    pub(crate) fs: s3s_fs::FileSystem,
    pub(crate) root: PathBuf,
}

/// `(first byte, object length)` of a GET answer: from `bytes a-b/len`, else the whole.
fn span(out: &GetObjectOutput) -> Option<(u64, u64)> {
    let len = u64::try_from(out.content_length?).ok()?;
    match &out.content_range {
        None => Some((0, len)),
        Some(r) => {
            let (range, total) = r.strip_prefix("bytes ")?.split_once('/')?;
            let first = range.split_once('-')?.0.parse().ok()?;
            Some((first, total.parse().ok()?))
        }
    }
}

impl FsStore {
    async fn fast_get(&self, bucket: &str, key: &str, out: &mut GetObjectOutput) -> Option<()> {
        let send = u64::try_from(out.content_length?).ok()?;
        let (first, total) = span(out)?;
        let path = self.root.join(bucket).join(key);
        let mut file = tokio::fs::File::open(&path).await.ok()?;
        if file.metadata().await.ok()?.len() != total {
            return None;
        }
        file.seek(std::io::SeekFrom::Start(first)).await.ok()?;
        let body = tokio_util::io::ReaderStream::with_capacity(file.take(send), PIECE);
        out.body = Some(StreamingBlob::wrap(body));
        Some(())
    }
}

macro_rules! forward_to_s3s_fs {
    ($($op:ident: $input:ident => $output:ident),* $(,)?) => {
        #[async_trait::async_trait]
        impl S3 for FsStore {
            $(
                async fn $op(
                    &self,
                    req: S3Request<s3s::dto::$input>,
                ) -> S3Result<S3Response<s3s::dto::$output>> {
                    self.fs.$op(req).await
                }
            )*

            async fn get_object(
                &self,
                req: S3Request<GetObjectInput>,
            ) -> S3Result<S3Response<GetObjectOutput>> {
                let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
                let mut resp = self.fs.get_object(req).await?;
                if resp.output.content_length.unwrap_or(0) > PIECE as i64 {
                    // On any doubt, s3s-fs's own body stays.
                    let _ = self.fast_get(&bucket, &key, &mut resp.output).await;
                }
                Ok(resp)
            }
        }
    };
}

forward_to_s3s_fs! {
    create_bucket: CreateBucketInput => CreateBucketOutput,
    copy_object: CopyObjectInput => CopyObjectOutput,
    delete_bucket: DeleteBucketInput => DeleteBucketOutput,
    delete_object: DeleteObjectInput => DeleteObjectOutput,
    delete_objects: DeleteObjectsInput => DeleteObjectsOutput,
    get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput,
    head_bucket: HeadBucketInput => HeadBucketOutput,
    head_object: HeadObjectInput => HeadObjectOutput,
    list_buckets: ListBucketsInput => ListBucketsOutput,
    list_objects: ListObjectsInput => ListObjectsOutput,
    list_objects_v2: ListObjectsV2Input => ListObjectsV2Output,
    put_object: PutObjectInput => PutObjectOutput,
    create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput,
    upload_part: UploadPartInput => UploadPartOutput,
    upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput,
    list_parts: ListPartsInput => ListPartsOutput,
    complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput,
    abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_of_whole_and_ranged_answers() {
        let out = |len: i64, range: Option<&str>| GetObjectOutput {
            content_length: Some(len),
            content_range: range.map(str::to_string),
            ..Default::default()
        };
        assert_eq!(span(&out(10, None)), Some((0, 10)));
        assert_eq!(span(&out(5, Some("bytes 3-7/20"))), Some((3, 20)));
        assert_eq!(span(&out(5, Some("items 3-7/20"))), None);
        assert_eq!(span(&out(5, Some("bytes 3-7/*"))), None);
    }
}
