/*-------------------------------------------------------------------------
 *
 * jsonschema_int.h
 *		The JSON Schema validator's private header: compiled schema
 *		representation and the functions the files of src/jsonschema/ offer
 *		each other.  Nothing outside src/jsonschema/ includes it; the rest of
 *		the extension uses jsonschema.h.
 *
 * A schema document (jsonb) is compiled once into a graph of JsNode, one
 * per subschema, with $ref/$dynamicRef resolved to node pointers.  The
 * validator then walks that graph and the instance jsonb side by side
 * without converting either to text.
 *
 *	jsonschema_compile.c	schema jsonb -> JsNode graph, resources, anchors,
 *							$ref resolution, metaschema-independent checks
 *	jsonschema_validate.c	instance validation, annotations (unevaluated*),
 *							error collection ("basic" output)
 *	jsonschema_uri.c		RFC 3986 reference resolution
 *	jsonschema_regex.c		ECMA-262 -> PostgreSQL ARE translation, matching
 *	jsonschema_format.c		"format" checkers
 *	jsonschema_format_pydantic.c	date-time, time, duration as pydantic reads them
 *	jsonschema_meta.c		embedded metaschemas (draft 2020-12, draft-07)
 *	jsonschema_sql.c		SQL-callable functions and the compiled-schema cache
 *
 *-------------------------------------------------------------------------
 */
#ifndef JSONSCHEMA_INT_H
#define JSONSCHEMA_INT_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "regex/regex.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "jbv.h"
#include "jsonschema.h"

/* SQLSTATE of a malformed or unsupported schema (documented in docs/jsonschema.md) */
#define JSONSCHEMA_ERRCODE_INVALID_SCHEMA	ERRCODE_INVALID_PARAMETER_VALUE

typedef enum JsDraft
{
	JS_DRAFT7 = 7,
	JS_DRAFT2020 = 2020
} JsDraft;

/* Vocabularies of draft 2020-12 (draft-07 behaves as if all were on) */
#define JS_VOCAB_CORE				0x01
#define JS_VOCAB_APPLICATOR			0x02
#define JS_VOCAB_UNEVALUATED		0x04
#define JS_VOCAB_VALIDATION			0x08
#define JS_VOCAB_METADATA			0x10
#define JS_VOCAB_FORMAT_ANNOTATION	0x20
#define JS_VOCAB_FORMAT_ASSERTION	0x40
#define JS_VOCAB_CONTENT			0x80
#define JS_VOCAB_DEFAULT			(0xFF & ~JS_VOCAB_FORMAT_ASSERTION)

/* Instance types, for "type" */
#define JS_T_NULL		0x01
#define JS_T_BOOLEAN	0x02
#define JS_T_OBJECT		0x04
#define JS_T_ARRAY		0x08
#define JS_T_NUMBER		0x10
#define JS_T_STRING		0x20
#define JS_T_INTEGER	0x40

/* Keyword presence bits (JsNode.kw) */
#define JSK_REF				(UINT64CONST(1) << 0)
#define JSK_DYNREF			(UINT64CONST(1) << 1)
#define JSK_TYPE			(UINT64CONST(1) << 2)
#define JSK_ENUM			(UINT64CONST(1) << 3)
#define JSK_CONST			(UINT64CONST(1) << 4)
#define JSK_MULTIPLEOF		(UINT64CONST(1) << 5)
#define JSK_MAXIMUM			(UINT64CONST(1) << 6)
#define JSK_EXMAXIMUM		(UINT64CONST(1) << 7)
#define JSK_MINIMUM			(UINT64CONST(1) << 8)
#define JSK_EXMINIMUM		(UINT64CONST(1) << 9)
#define JSK_MAXLENGTH		(UINT64CONST(1) << 10)
#define JSK_MINLENGTH		(UINT64CONST(1) << 11)
#define JSK_PATTERN			(UINT64CONST(1) << 12)
#define JSK_FORMAT			(UINT64CONST(1) << 13)
#define JSK_MAXITEMS		(UINT64CONST(1) << 14)
#define JSK_MINITEMS		(UINT64CONST(1) << 15)
#define JSK_UNIQUEITEMS		(UINT64CONST(1) << 16)
#define JSK_MAXCONTAINS		(UINT64CONST(1) << 17)
#define JSK_MINCONTAINS		(UINT64CONST(1) << 18)
#define JSK_MAXPROPERTIES	(UINT64CONST(1) << 19)
#define JSK_MINPROPERTIES	(UINT64CONST(1) << 20)
#define JSK_REQUIRED		(UINT64CONST(1) << 21)
#define JSK_DEPREQUIRED		(UINT64CONST(1) << 22)
#define JSK_ALLOF			(UINT64CONST(1) << 23)
#define JSK_ANYOF			(UINT64CONST(1) << 24)
#define JSK_ONEOF			(UINT64CONST(1) << 25)
#define JSK_NOT				(UINT64CONST(1) << 26)
#define JSK_IF				(UINT64CONST(1) << 27)
#define JSK_THEN			(UINT64CONST(1) << 28)
#define JSK_ELSE			(UINT64CONST(1) << 29)
#define JSK_DEPSCHEMAS		(UINT64CONST(1) << 30)
#define JSK_PREFIXITEMS		(UINT64CONST(1) << 31)
#define JSK_ITEMS			(UINT64CONST(1) << 32)
#define JSK_CONTAINS		(UINT64CONST(1) << 33)
#define JSK_PROPERTIES		(UINT64CONST(1) << 34)
#define JSK_PATTERNPROPS	(UINT64CONST(1) << 35)
#define JSK_ADDITIONALPROPS (UINT64CONST(1) << 36)
#define JSK_PROPERTYNAMES	(UINT64CONST(1) << 37)
#define JSK_UNEVALITEMS		(UINT64CONST(1) << 38)
#define JSK_UNEVALPROPS		(UINT64CONST(1) << 39)

/* keywords that only apply to one instance type */
#define JSK_NUMERIC_KW	(JSK_MULTIPLEOF | JSK_MAXIMUM | JSK_EXMAXIMUM | \
						 JSK_MINIMUM | JSK_EXMINIMUM)
#define JSK_STRING_KW	(JSK_MAXLENGTH | JSK_MINLENGTH | JSK_PATTERN | JSK_FORMAT)
#define JSK_ARRAY_KW	(JSK_MAXITEMS | JSK_MINITEMS | JSK_UNIQUEITEMS | \
						 JSK_PREFIXITEMS | JSK_ITEMS | JSK_CONTAINS | \
						 JSK_UNEVALITEMS)
#define JSK_OBJECT_KW	(JSK_MAXPROPERTIES | JSK_MINPROPERTIES | JSK_REQUIRED | \
						 JSK_DEPREQUIRED | JSK_DEPSCHEMAS | JSK_PROPERTIES | \
						 JSK_PATTERNPROPS | JSK_ADDITIONALPROPS | \
						 JSK_PROPERTYNAMES | JSK_UNEVALPROPS)
#define JSK_INPLACE_KW	(JSK_REF | JSK_DYNREF | JSK_ALLOF | JSK_ANYOF | \
						 JSK_ONEOF | JSK_NOT | JSK_IF | JSK_DEPSCHEMAS)

/* Formats we know (JsNode.format) */
typedef enum JsFormat
{
	JSF_UNKNOWN = 0,
	JSF_DATE_TIME,
	JSF_DATE,
	JSF_TIME,
	JSF_DURATION,
	JSF_EMAIL,
	JSF_IDN_EMAIL,
	JSF_HOSTNAME,
	JSF_IDN_HOSTNAME,
	JSF_IPV4,
	JSF_IPV6,
	JSF_URI,
	JSF_URI_REFERENCE,
	JSF_IRI,
	JSF_IRI_REFERENCE,
	JSF_URI_TEMPLATE,
	JSF_UUID,
	JSF_JSON_POINTER,
	JSF_RELATIVE_JSON_POINTER,
	JSF_REGEX
} JsFormat;

typedef struct JsNode JsNode;
typedef struct JsResource JsResource;

/*
 * Kinds of jsonb entries, as bits: 1 << (JEntry type >> 28).  The
 * validator's fast paths dispatch on them without decoding the value.
 */
#define JS_NKINDS			6
#define JS_KIND_STRING		0x01
#define JS_KIND_NUMERIC		0x02
#define JS_KIND_FALSE		0x04
#define JS_KIND_TRUE		0x08
#define JS_KIND_NULL		0x10
#define JS_KIND_CONTAINER	0x20
#define JS_KIND_OF(jentry)	((uint8) (1 << (((jentry) & JENTRY_TYPEMASK) >> 28)))

/* Key layouts kept per model node (jsonschema_validate.c) */
#define JS_MAX_LAYOUTS		4

/* A compiled regular expression ("pattern", "patternProperties") */
typedef struct JsRegex
{
	regex_t		re;
	char	   *source;			/* the ECMA-262 text, for messages */
	struct SimpleRe *simple;	/* fast matcher for simple patterns, or NULL */
} JsRegex;

/* A named property with its subschema, sorted in jsonb key order */
typedef struct JsProp
{
	const char *name;
	int			len;
	JsNode	   *node;			/* properties / dependentSchemas */
	const char **req;			/* dependentRequired: names */
	int		   *reqlen;
	int			nreq;
} JsProp;

/*
 * properties and required merged into one list in jsonb key order, so that
 * an object's members are matched against both in a single merge pass
 */
typedef struct JsKey
{
	const char *name;
	int			len;
	bool		required;
	JsNode	   *node;			/* the "properties" subschema, or NULL */
} JsKey;

typedef struct JsPatternProp
{
	JsRegex    *re;
	JsNode	   *node;
} JsPatternProp;

/* $anchor / $dynamicAnchor of a resource */
typedef struct JsAnchor
{
	char	   *name;
	bool		dynamic;
	JsNode	   *node;
} JsAnchor;

/* A schema resource: a document root or a subschema with $id */
struct JsResource
{
	char	   *uri;			/* absolute URI without fragment */
	JsonbValue	json;			/* the resource's root schema (jbvBinary or jbvBool) */
	JsNode	   *node;			/* its compiled root */
	List	   *anchors;		/* of JsAnchor */
	char	   *location;		/* schema path prefix for messages */
	int			draft;
	uint32		vocab;
};

struct JsNode
{
	/*
	 * Hot fields first: what the validator reads for every value.  The
	 * validator may replace keys[].node and items by the target of a
	 * $ref-only node in the same resource on first use (same answer).
	 */
	uint64		kw;				/* JSK_* present */
	int8		boolean;		/* -1: object schema; 0: false; 1: true */
	uint8		types;			/* JS_T_* accepted by "type" */
	bool		has_unevaluated;	/* this node has unevaluated* */
	bool		quick_anyof;	/* only anyOf, no annotations needed */
	bool		plain_object;	/* only type, properties, required,
								 * additionalProperties */
	bool		plain_array;	/* only type, items, minItems, maxItems
								 * (items present) */

	/*
	 * What this node answers for a member or item, by the kind of its jsonb
	 * entry (JS_KIND_*), computed on first use by the validator's boolean
	 * fast paths: kinds it accepts outright, kinds that need the scalar
	 * checks of leaf_node[kind] only, indexed by whether formats are
	 * asserted.  Kinds in neither mask are rejected unless leaf_walk has
	 * them (the full walk decides).
	 */
	int8		leaf_state;		/* 0: not computed yet, 1: computed */
	uint8		leaf_pass[2];
	uint8		leaf_check[2];
	uint8		leaf_walk;

	/*
	 * Member layouts seen by the boolean object fast path: objects with the
	 * same keys in the same order (one pydantic model's dumps) reuse the
	 * matching of their keys.  Added by the validator, never changed once
	 * added (a nested call may be reading one).
	 */
	int8		nlayouts;
	struct JsLayout *layouts[JS_MAX_LAYOUTS];
	int			nkeys;
	JsResource *resource;		/* enclosing resource (dynamic scope) */
	JsNode	   *ref_node;
	JsKey	   *keys;			/* properties + required, jsonb key order */
	JsonbValue *enumvals;
	int			nenum;
	int			nanyof;
	JsNode	  **anyof;
	JsNode	   *items;

	JsNode	   *leaf_node[JS_NKINDS];	/* see leaf_check */

	JsFormat	format;
	char	   *base;			/* base URI in effect */
	char	   *location;		/* JSON pointer of this subschema, for messages */
	JsonbContainer *container;	/* the schema object (NULL for booleans) */

	/* $ref, $dynamicRef */
	char	   *ref;
	char	   *dynref;
	JsNode	   *dynref_node;
	char	   *dynref_anchor;	/* non-NULL when the bookend applies */

	/* validation vocabulary */
	JsonbValue	constval;
	Numeric		multipleof;
	Numeric		maximum;
	Numeric		exmaximum;
	Numeric		minimum;
	Numeric		exminimum;
	int64		maxlength;
	int64		minlength;
	JsRegex    *pattern;
	char	   *format_name;
	int64		maxitems;
	int64		minitems;
	int64		maxcontains;
	int64		mincontains;
	int64		maxproperties;
	int64		minproperties;
	JsProp	   *required;		/* sorted, unique; node unused */
	int			nrequired;
	JsProp	   *deprequired;	/* dependentRequired + draft-07 array deps */
	int			ndeprequired;

	/* applicators */
	JsNode	  **allof;
	int			nallof;
	JsNode	  **oneof;
	int			noneof;
	JsNode	   *not;
	JsNode	   *if_;
	JsNode	   *then_;
	JsNode	   *else_;
	JsProp	   *depschemas;
	int			ndepschemas;
	JsNode	  **prefixitems;
	int			nprefixitems;
	JsNode	   *contains;
	JsProp	   *properties;		/* sorted in jsonb key order */
	int			nproperties;
	JsPatternProp *patternprops;
	int			npatternprops;
	JsNode	   *additionalprops;
	JsNode	   *propertynames;
	JsNode	   *unevalitems;
	JsNode	   *unevalprops;
};

/* A compiled schema: everything lives in its own memory context */
struct JsSchema
{
	MemoryContext cxt;
	JsNode	   *root;
	int			draft;
	int			nnodes;
	List	   *resources;		/* of JsResource */
	List	   *regexes;		/* of JsRegex, freed by a reset callback */
	List	   *errors;			/* collected compile errors (JsError) */
	Jsonb	   *schema;			/* private copy of the schema */
	Jsonb	   *registry;		/* private copy of the extra documents, or NULL */
	uint32		hash;
	Size		size;			/* bytes of the key (schema + registry) */
	Size		layout_bytes;	/* memory taken by the nodes' layouts */
};

/* One error of the output ("basic" output format) */
typedef struct JsError
{
	char	   *path;			/* JSON pointer into the instance */
	char	   *schema_path;	/* JSON pointer into the schema */
	const char *keyword;
	char	   *message;
} JsError;

extern void JsonschemaWorkLimitExceeded(const char *what, const char *location) pg_attribute_noreturn();

/* jsonschema_uri.c */
extern char *JsonschemaUriResolve(const char *base, const char *ref);
extern char *JsonschemaUriStripFragment(const char *uri, char **fragment);
extern char *JsonschemaPercentDecode(const char *s);

/* jsonschema_regex.c */
extern JsRegex *JsonschemaRegexCompile(const char *pattern, int len,
									   char **errmsg);
extern bool JsonschemaRegexMatch(JsRegex *re, const char *s, int len);
extern void JsonschemaRegexFree(JsRegex *re);
extern bool JsonschemaRegexIsEcma(const char *s, int len);

/* jsonschema_format.c */
extern JsFormat JsonschemaFormatLookup(const char *name, int len);
extern bool JsonschemaFormatCheck(JsFormat f, const char *s, int len,
								  JsFormatMode mode);

/* jsonschema_format_pydantic.c */
extern bool JsonschemaPydanticDateTime(const char *s, int len);
extern bool JsonschemaPydanticTime(const char *s, int len);
extern bool JsonschemaPydanticDuration(const char *s, int len);

/* jsonschema_meta.c */
extern Jsonb *JsonschemaBuiltinDocument(const char *uri);
extern const char *JsonschemaMetaschemaUri(int draft);

#endif							/* JSONSCHEMA_INT_H */
