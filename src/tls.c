/*-------------------------------------------------------------------------
 *
 * tls.c
 *		TLS for the broker (amqps://) and Redis (rediss://) clients: the
 *		OpenSSL client context both use (TLS 1.2 or later, the CA file or
 *		the system's CA store, a client certificate and key, what is
 *		verified), the private key file's permission check, a session on a
 *		socket the caller owns (redis.c), and the text of a TLS failure
 *		that names its cause (which certificate failed verification and why,
 *		the server's alert, the library's reason).  Reads no setting: the
 *		callers pass TlsOptions built from theirs.
 *
 * Verification happens inside the handshake (SSL_VERIFY_PEER, and the host
 * name or IP address checked by OpenSSL itself for "full"), so a server that
 * fails it never gets a byte of the application protocol: no AMQP login, no
 * Redis AUTH.  The first failure the verify callback sees is kept in a
 * static record for TlsAppendFailure: a backend or worker runs one handshake
 * at a time, and TlsConfigureContext clears the record before each.
 *
 * Key files: a passphrase-protected key fails to load (OpenSSL would
 * otherwise ask on the terminal of the server), and a key file that the
 * group or others can read is refused, with libpq's rule for client keys
 * (0600 or less when owned by the server's user, 0640 or less when owned by
 * root).  Messages name files and settings, never their contents.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"

/* The first verification failure of the current handshake. */
static struct
{
	bool		failed;
	int			error;			/* X509_V_ERR_* */
	int			depth;			/* 0: the server's own certificate */
	char		subject[160];	/* RFC 2253, non-ASCII escaped */
	char		host[256];		/* what "full" checked */
} verify_failure;

const char *
TlsVerifyName(TlsVerify verify)
{
	switch (verify)
	{
		case TLS_VERIFY_FULL:
			return "full";
		case TLS_VERIFY_CA:
			return "ca";
		case TLS_VERIFY_NONE:
			return "none";
	}
	return "?";
}

/* The reason of the oldest error in OpenSSL's queue (which is emptied). */
static const char *
openssl_reason(void)
{
	unsigned long e = ERR_get_error();
	const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	if (reason != NULL)
		return reason;
	return e != 0 ? "unknown OpenSSL error" : "no reason given";
}

static int
verify_callback(int ok, X509_STORE_CTX *store)
{
	if (!ok && !verify_failure.failed)
	{
		X509	   *cert = X509_STORE_CTX_get_current_cert(store);
		BIO		   *bio;

		verify_failure.failed = true;
		verify_failure.error = X509_STORE_CTX_get_error(store);
		verify_failure.depth = X509_STORE_CTX_get_error_depth(store);
		verify_failure.subject[0] = '\0';
		if (cert != NULL && (bio = BIO_new(BIO_s_mem())) != NULL)
		{
			int			n;

			X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0,
							   XN_FLAG_RFC2253 | ASN1_STRFLGS_ESC_MSB);
			n = BIO_read(bio, verify_failure.subject, sizeof(verify_failure.subject) - 1);
			verify_failure.subject[n > 0 ? n : 0] = '\0';
			BIO_free(bio);
		}
	}
	return ok;
}

/* An encrypted key is not supported: fail instead of prompting. */
static int
no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
	return 0;
}

/* Whether path can be opened for reading; else why, in error. */
static bool
file_readable(const char *path, const char *what, const char *setting, StringInfo error)
{
	int			fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
	{
		appendStringInfo(error, "could not open %s \"%s\" (%s): %s",
						 what, path, setting, strerror(errno));
		return false;
	}
	close(fd);
	return true;
}

/*
 * libpq's rule for a client's private key: a regular file, no group or
 * world access when owned by the server's user, at most group read when
 * owned by root.
 */
static bool
key_file_private(const char *path, const char *setting, StringInfo error)
{
	struct stat st;

	if (stat(path, &st) != 0)
	{
		appendStringInfo(error, "could not open private key file \"%s\" (%s): %s",
						 path, setting, strerror(errno));
		return false;
	}
	if (!S_ISREG(st.st_mode))
	{
		appendStringInfo(error, "private key file \"%s\" (%s) is not a regular file",
						 path, setting);
		return false;
	}
	if ((st.st_uid == geteuid() && (st.st_mode & (S_IRWXG | S_IRWXO))) ||
		(st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO))) ||
		(st.st_uid != geteuid() && st.st_uid != 0 && (st.st_mode & S_IRWXO)))
	{
		appendStringInfo(error, "private key file \"%s\" (%s) has group or world access; "
						 "it must have permissions u=rw (0600) or less if owned by the server's user, "
						 "or u=rw,g=r (0640) or less if owned by root",
						 path, setting);
		return false;
	}
	return true;
}

static bool
is_ip_address(const char *host)
{
	unsigned char addr[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

/*
 * TlsConfigureContext
 *		Set up an OpenSSL client context (one made by the caller or by
 *		librabbitmq-c) for a connection to host: TLS 1.2 or later; unless
 *		opts->verify is none, the peer's chain verified against
 *		opts->ca_file (or the system's CA store) during the handshake, and
 *		for full also host (a DNS name, or an IP address, matched as
 *		OpenSSL matches them: subjectAltName first, no partial wildcards);
 *		the client certificate and key if given.  Clears the previous
 *		verification failure.  False with the reason in error.
 */
bool
TlsConfigureContext(struct ssl_ctx_st *ctx, const TlsOptions *opts, const char *host,
					StringInfo error)
{
	bool		has_ca = opts->ca_file != NULL && opts->ca_file[0] != '\0';
	bool		has_cert = opts->cert_file != NULL && opts->cert_file[0] != '\0';
	bool		has_key = opts->key_file != NULL && opts->key_file[0] != '\0';

	memset(&verify_failure, 0, sizeof(verify_failure));
	strlcpy(verify_failure.host, host, sizeof(verify_failure.host));
	ERR_clear_error();

	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
	{
		appendStringInfo(error, "could not set up TLS: %s", openssl_reason());
		return false;
	}
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);

	if (opts->verify == TLS_VERIFY_NONE)
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	else
	{
		if (has_ca)
		{
			if (!file_readable(opts->ca_file, "CA file", psprintf("%s_ca_file", opts->settings), error))
				return false;
			if (SSL_CTX_load_verify_locations(ctx, opts->ca_file, NULL) != 1)
			{
				appendStringInfo(error, "could not load CA file \"%s\" (%s_ca_file): %s",
								 opts->ca_file, opts->settings, openssl_reason());
				return false;
			}
		}
		else if (SSL_CTX_set_default_verify_paths(ctx) != 1)
		{
			appendStringInfo(error, "could not load the system's CA certificates: %s",
							 openssl_reason());
			return false;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_callback);
		if (opts->verify == TLS_VERIFY_FULL)
		{
			X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
			int			ok;

			X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (is_ip_address(host))
				ok = X509_VERIFY_PARAM_set1_ip_asc(param, host);
			else
				ok = X509_VERIFY_PARAM_set1_host(param, host, 0);
			if (ok != 1)
			{
				appendStringInfo(error, "could not set up the TLS host name check for \"%s\": %s",
								 host, openssl_reason());
				return false;
			}
		}
	}

	if (has_key && !has_cert)
	{
		appendStringInfo(error, "%s_key_file is set without %s_cert_file",
						 opts->settings, opts->settings);
		return false;
	}
	if (has_cert)
	{
		const char *key = has_key ? opts->key_file : opts->cert_file;
		const char *key_setting = psprintf("%s_%s_file", opts->settings, has_key ? "key" : "cert");

		if (!file_readable(opts->cert_file, "certificate file",
						   psprintf("%s_cert_file", opts->settings), error))
			return false;
		if (SSL_CTX_use_certificate_chain_file(ctx, opts->cert_file) != 1)
		{
			appendStringInfo(error, "could not load certificate file \"%s\" (%s_cert_file): %s",
							 opts->cert_file, opts->settings, openssl_reason());
			return false;
		}
		if (!key_file_private(key, key_setting, error) ||
			!file_readable(key, "private key file", key_setting, error))
			return false;
		if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		{
			appendStringInfo(error, "could not load private key file \"%s\" (%s): %s "
							 "(keys protected by a passphrase are not supported)",
							 key, key_setting, openssl_reason());
			return false;
		}
		if (SSL_CTX_check_private_key(ctx) != 1)
		{
			appendStringInfo(error, "private key file \"%s\" (%s) does not match certificate file \"%s\": %s",
							 key, key_setting, opts->cert_file, openssl_reason());
			return false;
		}
	}
	ERR_clear_error();
	return true;
}

/*
 * TlsNewSession
 *		A client session for host on the connected socket fd (which stays
 *		the caller's), configured by opts, in connect state: the caller
 *		drives SSL_connect.  Sends the host name (SNI) unless it is an IP
 *		address.  NULL with the reason in error.  Free it with SSL_free.
 */
struct ssl_st *
TlsNewSession(const TlsOptions *opts, const char *host, int fd, StringInfo error)
{
	SSL_CTX    *ctx = SSL_CTX_new(TLS_client_method());
	SSL		   *ssl;

	if (ctx == NULL)
	{
		appendStringInfo(error, "could not set up TLS: %s", openssl_reason());
		return NULL;
	}
	if (!TlsConfigureContext(ctx, opts, host, error))
	{
		SSL_CTX_free(ctx);
		return NULL;
	}
	ssl = SSL_new(ctx);
	SSL_CTX_free(ctx);			/* the session holds its own reference */
	if (ssl == NULL)
	{
		appendStringInfo(error, "could not set up TLS: %s", openssl_reason());
		return NULL;
	}
	if (SSL_set_fd(ssl, fd) != 1 ||
		(!is_ip_address(host) && SSL_set_tlsext_host_name(ssl, host) != 1))
	{
		appendStringInfo(error, "could not set up TLS: %s", openssl_reason());
		SSL_free(ssl);
		return NULL;
	}
	/* retries after WANT_WRITE may come with a grown, moved buffer */
	SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_set_connect_state(ssl);
	return ssl;
}

/*
 * TlsAppendFailure
 *		Describe why a TLS operation failed: the certificate that failed
 *		verification and why (the host name check included), else the
 *		server's alert or OpenSSL's reason, with a word on the usual causes.
 *		ssl and ret are the failed call's session and return value (ssl may
 *		be NULL when the library that made the call keeps it to itself).
 *		Empties OpenSSL's error queue.
 */
void
TlsAppendFailure(StringInfo error, struct ssl_st *ssl, int ret)
{
	int			code = ssl != NULL ? SSL_get_error(ssl, ret) : SSL_ERROR_SSL;
	int			saved_errno = errno;
	unsigned long e;
	const char *reason;

	if (verify_failure.failed)
	{
		const char *what = X509_verify_cert_error_string(verify_failure.error);

		ERR_clear_error();
		verify_failure.failed = false;
		if (verify_failure.error == X509_V_ERR_HOSTNAME_MISMATCH ||
			verify_failure.error == X509_V_ERR_IP_ADDRESS_MISMATCH)
			appendStringInfo(error, "TLS certificate verify failed: %s: the server's certificate (%s) is not valid for \"%s\"",
							 what, verify_failure.subject, verify_failure.host);
		else
			appendStringInfo(error, "TLS certificate verify failed: %s (certificate %s at depth %d)",
							 what, verify_failure.subject, verify_failure.depth);
		return;
	}

	e = ERR_peek_error();
	reason = e != 0 ? ERR_reason_error_string(e) : NULL;
	ERR_clear_error();
	if (reason != NULL)
	{
		appendStringInfo(error, "TLS error: %s", reason);
		if (ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER ||
			ERR_GET_REASON(e) == SSL_R_PACKET_LENGTH_TOO_LONG)
			appendStringInfoString(error, " (the server does not speak TLS on this port)");
		else if (strstr(reason, "handshake failure") != NULL)
			appendStringInfoString(error, " (the server may require a client certificate)");
	}
	else if (code == SSL_ERROR_ZERO_RETURN)
		appendStringInfoString(error, "TLS error: the server closed the connection");
	else if ((code == SSL_ERROR_SYSCALL && ssl != NULL && saved_errno != 0) ||
			 saved_errno == ECONNRESET || saved_errno == EPIPE)
		appendStringInfo(error, "TLS error: %s", strerror(saved_errno));
	else
		appendStringInfoString(error, "TLS error: the server closed the connection");
}
