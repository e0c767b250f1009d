/*-------------------------------------------------------------------------
 *
 * tls.h
 *		TLS for the broker and Redis clients (tls.c): one OpenSSL client
 *		set-up from a TlsOptions, verification that names its cause, and
 *		the text of a TLS failure.  Callers other than broker.c and redis.c
 *		see no OpenSSL type.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_TLS_H
#define CELERYSALT_TLS_H

#include "lib/stringinfo.h"

/* What is verified of the server (celerysalt.*_tls_verify). */
typedef enum TlsVerify
{
	TLS_VERIFY_FULL,			/* chain to a trusted CA and the host name */
	TLS_VERIFY_CA,				/* chain to a trusted CA only */
	TLS_VERIFY_NONE				/* nothing: encrypted, not authenticated */
} TlsVerify;

typedef struct TlsOptions
{
	const char *ca_file;		/* NULL or "": the system's CA store */
	const char *cert_file;		/* NULL or "": no client certificate */
	const char *key_file;		/* NULL or "": the key is in cert_file */
	TlsVerify	verify;
	/* for messages: "celerysalt.broker_tls" names the settings used */
	const char *settings;
} TlsOptions;

/* OpenSSL's SSL_CTX and SSL, without its headers. */
struct ssl_ctx_st;
struct ssl_st;

extern const char *TlsVerifyName(TlsVerify verify);
extern bool TlsConfigureContext(struct ssl_ctx_st *ctx, const TlsOptions *opts,
								const char *host, StringInfo error);
extern struct ssl_st *TlsNewSession(const TlsOptions *opts, const char *host, int fd,
									StringInfo error);
extern void TlsAppendFailure(StringInfo error, struct ssl_st *ssl, int ret);

#endif							/* CELERYSALT_TLS_H */
