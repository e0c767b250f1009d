/*-------------------------------------------------------------------------
 *
 * jsonschema.h
 *		The JSON Schema validator library (src/jsonschema/), as the rest of
 *		the extension sees it: compile a schema, validate jsonb against it,
 *		turn errors into jsonb.  The compiled form is opaque.
 *
 *-------------------------------------------------------------------------
 */
#ifndef JSONSCHEMA_H
#define JSONSCHEMA_H

#include "postgres.h"

#include "nodes/pg_list.h"
#include "utils/jsonb.h"

typedef struct JsSchema JsSchema;

/*
 * The work limit (celerysalt.validation_work_limit, defined in guc.c): the
 * steps one validation (subschemas applied to values) or one compilation
 * (schema objects compiled, resources and anchors compared) may take.
 * Real schemas stay far below the default; schemas whose in-place
 * applicators or $ref fan out exponentially stop with 54000.
 */
#define JSONSCHEMA_DEFAULT_WORK_LIMIT	100000000
extern int	JsonschemaWorkLimit;

/*
 * What a validation does with "format".  The two assertion modes differ
 * only for date-time, time and duration: RFC 3339 (the JSON Schema
 * specification, the official test suite) or what pydantic 2 accepts for a
 * datetime, time and timedelta field (jsonschema_format_pydantic.c), for
 * schemas that came from model_json_schema().
 */
typedef enum JsFormatMode
{
	JS_FORMATS_ANNOTATE,		/* an annotation only */
	JS_FORMATS_RFC3339,			/* asserted, RFC 3339 */
	JS_FORMATS_PYDANTIC			/* asserted, pydantic's reading of dates and times */
} JsFormatMode;

/* jsonschema_compile.c */
extern JsSchema *JsonschemaCompile(Jsonb *schema, Jsonb *registry,
								   MemoryContext parent, bool raise);
extern void JsonschemaFree(JsSchema *s);

/* jsonschema_validate.c */
extern bool JsonschemaValidate(JsSchema *s, Jsonb *instance, JsFormatMode formats,
							   List **errors);
extern Jsonb *JsonschemaErrorsToJsonb(List *errors, bool with_path);

/* Keep a compiled schema in owner's memory (freed with it). */
extern void JsonschemaKeep(JsSchema *s, MemoryContext owner);

#endif							/* JSONSCHEMA_H */
