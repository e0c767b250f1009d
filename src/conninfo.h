/*-------------------------------------------------------------------------
 *
 * conninfo.h
 *		amqp:// (one node or a ";" list) and redis:// URLs, password files
 *		and redaction (conninfo.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef CELERYSALT_CONNINFO_H
#define CELERYSALT_CONNINFO_H

#include "lib/stringinfo.h"

#include "tls.h"

/* One RabbitMQ node of celerysalt.broker_url. */
typedef struct AmqpUrl
{
	char	   *scheme;			/* amqp, amqps, pyamqp or librabbitmq */
	char	   *host;
	int			port;
	char	   *vhost;
	char	   *user;
	char	   *password;		/* never printed */
	bool		has_password;	/* the URL gave a non-empty password */
	bool		tls;			/* amqps://: TLS, never plain TCP */
	char	   *host_written;	/* the host as written ("localhost" for none):
								 * what messages show and the name a TLS
								 * certificate must carry */
	bool		port_given;		/* else the default or the previous node's */
	bool		vhost_given;	/* else "/" or the previous node's */
	char	   *redacted;		/* the node's URL as written, password "***" */
} AmqpUrl;

typedef struct RedisUrl
{
	char	   *host;
	int			port;
	int			db;
	char	   *user;			/* NULL unless given (Redis 6 ACL) */
	char	   *password;		/* NULL unless given; never printed */
	bool		tls;			/* rediss://: TLS, never plain TCP */
	/* redis-py's TLS query parameters (rediss:// only); -1 / NULL: not given */
	int			tls_verify;		/* a TlsVerify from ssl_cert_reqs */
	int			tls_check_hostname; /* ssl_check_hostname: 0 or 1 */
	char	   *tls_ca_file;	/* ssl_ca_certs */
	char	   *tls_cert_file;	/* ssl_certfile */
	char	   *tls_key_file;	/* ssl_keyfile */
} RedisUrl;

extern AmqpUrl *ConninfoParseAmqpNodes(const char *url, int *nnodes, char **error);
extern char *ConninfoRedactAmqp(const char *url);
extern bool ConninfoParseRedis(const char *url, RedisUrl *out, char **error);
extern char *ConninfoReadSecretFile(const char *path, const char *what, StringInfo error);
extern char *ConninfoRedactText(const char *text);
extern char *ConninfoRedactUrl(const char *url);
extern void ConninfoInstallLogHook(void);

#endif							/* CELERYSALT_CONNINFO_H */
