/*-------------------------------------------------------------------------
 *
 * redact.c
 *		Keeps credentials out of the server log.  PostgreSQL itself writes a
 *		setting's new value on reload ("parameter ... changed to ...") and
 *		repeats a rejected value in its error message; for the settings that
 *		may carry a password this emit_log_hook replaces the password with
 *		"***" before the message is logged or sent to the client, and keeps
 *		the statement (which repeats the value) out of the log.
 *
 * The hook is installed in _PG_init, so with shared_preload_libraries it
 * runs in the postmaster, which is the process that logs reloads.
 *
 *-------------------------------------------------------------------------
 */
#include "celerysalt.h"

#include "utils/elog.h"

#include "broker.h"
#include "redis.h"

static emit_log_hook_type prev_emit_log_hook = NULL;

typedef struct SecretSetting
{
	const char *quoted_name;	/* as it appears in messages */
	char	   *(*redact) (const char *url);
} SecretSetting;

static const SecretSetting secret_settings[] = {
	{"\"celerysalt.broker_url\"", BrokerRedactedUrl},
	{"\"celerysalt.redis_url\"", RedisRedactedUrl},
};

/*
 * In message, the value of the setting named at name_pos is the first
 * double-quoted string after it (both message forms put it there): return a
 * copy with that value redacted, or NULL if the form is not recognised.
 */
static char *
redact_message(const char *message, const char *name_end,
			   char *(*redact) (const char *url))
{
	const char *open = strchr(name_end, '"');
	const char *close;
	char	   *value;

	if (open == NULL)
		return NULL;
	close = strrchr(open + 1, '"');
	if (close == NULL || close == open)
		return NULL;
	value = pnstrdup(open + 1, close - open - 1);
	return psprintf("%.*s%s%s", (int) (open + 1 - message), message,
					redact(value), close);
}

static void
redact_emit_log_hook(ErrorData *edata)
{
	if (edata->message != NULL && strstr(edata->message, "\"celerysalt.") != NULL)
	{
		for (size_t i = 0; i < lengthof(secret_settings); i++)
		{
			const char *pos = strstr(edata->message, secret_settings[i].quoted_name);
			char	   *redacted;

			if (pos == NULL)
				continue;
			redacted = redact_message(edata->message,
									  pos + strlen(secret_settings[i].quoted_name),
									  secret_settings[i].redact);
			if (redacted != NULL)
			{
				edata->message = redacted;
				edata->hide_stmt = true;	/* the statement repeats the value */
			}
		}
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

void
RedactInstallHook(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = redact_emit_log_hook;
}
