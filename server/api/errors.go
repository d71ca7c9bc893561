// Package api implements the labs.v1 gRPC services on top of the lab
// catalog, the sandbox manager and the store. It is the only place that
// converts between proto messages and domain types, and errors to gRPC
// status codes (toStatus).
package api

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"nslab/labs"
	"nslab/sandbox"
	"nslab/server/store"
)

// Domain errors of this package; wrap them with context.
var (
	errInvalid      = errors.New("invalid argument")
	errPrecondition = errors.New("failed precondition")
	// errPermission: the caller is known and may see the object, but
	// not do this to it (a learner asking for a reference solution).
	errPermission = errors.New("permission denied")
	// errUnauthenticated: no caller could be established.
	errUnauthenticated = errors.New("unauthenticated")
	errExhausted       = errors.New("resource exhausted")
	errUnavailable     = errors.New("unavailable")
)

// fieldError is an invalid request field.
type fieldError struct {
	field, msg string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }
func (e *fieldError) Unwrap() error { return errInvalid }

// messageErr replaces the message of the error it wraps.
type messageErr struct {
	msg string
	err error
}

func (e *messageErr) Error() string { return e.msg }
func (e *messageErr) Unwrap() error { return e.err }

// withMessage is err (for errors.Is and toStatus) saying msg instead.
func withMessage(err error, msg string) error { return &messageErr{msg: msg, err: err} }

func invalidField(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// toStatus is the one mapping from errors to gRPC status codes. The
// message always says what was being done, as the wrapping built it.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var code codes.Code
	switch {
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, labs.ErrNotFound), errors.Is(err, store.ErrNotFound), errors.Is(err, sandbox.ErrNodeNotFound):
		code = codes.NotFound
	case errors.Is(err, store.ErrAlreadyExists):
		code = codes.AlreadyExists
	case errors.Is(err, errInvalid), errors.Is(err, labs.ErrInvalid), errors.Is(err, store.ErrInvalid), errors.Is(err, sandbox.ErrBadRequest):
		code = codes.InvalidArgument
	case errors.Is(err, errPrecondition), errors.Is(err, sandbox.ErrUnsupported), errors.Is(err, sandbox.ErrGone):
		code = codes.FailedPrecondition
	case errors.Is(err, store.ErrExhausted), errors.Is(err, errExhausted):
		code = codes.ResourceExhausted
	case errors.Is(err, errPermission):
		code = codes.PermissionDenied
	case errors.Is(err, errUnauthenticated):
		code = codes.Unauthenticated
	case errors.Is(err, errUnavailable):
		code = codes.Unavailable
	default:
		code = codes.Internal
	}
	st := status.New(code, err.Error())
	if code == codes.InvalidArgument {
		br := &errdetails.BadRequest{}
		var fe *fieldError
		var ve *labs.ValidationError
		switch {
		case errors.As(err, &fe):
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: fe.field, Description: fe.msg})
		case errors.As(err, &ve):
			for _, p := range ve.Problems {
				br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
					Field: p.Field, Description: ve.Source + ": " + p.Message,
				})
			}
		}
		if len(br.FieldViolations) > 0 {
			if withDetails, derr := st.WithDetails(br); derr == nil {
				st = withDetails
			}
		}
	}
	return st.Err()
}
