package acme

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3 is every S3 call the certificate storage makes (the instance role).
// Objects live under the deployment's prefix of the staging bucket only
// (Prefix: DEPLOYMENT/certs/); the IAM action each call needs is beside it.
// The objects include the certificate's private key and the ACME account
// key: the bucket stays private, encrypted, and readable by the
// deployment's instance role and its operators alone.
type S3 interface {
	// s3:GetObject on arn:aws:s3:::BUCKET/DEPLOYMENT/certs/*.
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	// s3:GetObject on the same (HEAD is authorized as GetObject).
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	// s3:PutObject on the same; the conditional writes of the locks
	// (If-None-Match, If-Match) need nothing more.
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	// s3:DeleteObject on the same, with s3:GetObject: S3 authorizes a
	// delete conditional on an ETag (the locks' release) with both
	// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-delete-enforce.html).
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	// s3:ListBucket on arn:aws:s3:::BUCKET with the condition
	// StringLike s3:prefix "DEPLOYMENT/certs/*".
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}
