/*
 * priority.c
 *		An item's priority read from JSON.
 *
 * A priority is an integer from 1 (highest) to 5 (lowest), written as a
 * JSON number or as a numeric string: blanks, an optional sign, digits, an
 * optional fraction of zeros ("2", 2, "2.0", 4.0 and " 3 " are priorities;
 * 2.5, "high" and 9 are not).  upsert_items raises an error for a bad one
 * (src/sync/upsert.c); a sync mapping skips the record and counts it
 * (src/sync/source.c).  Both read it here, so both accept the same values.
 */
#include "postgres.h"

#include <ctype.h>

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"

#include "queue/priority.h"

PriorityStatus
PriorityParse(const JsonbValue *v, int16 *value, char **text, bool *quoted)
{
	const char *s;
	const char *p;
	const char *end;
	const char *start;
	bool		negative = false;
	int			digits = 0;
	int			n = 0;
	bool		integral = true;

	*text = NULL;
	*quoted = false;
	if (v == NULL || v->type == jbvNull)
		return PRIORITY_ABSENT;
	if (v->type == jbvNumeric)
	{
		s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
		end = s + strlen(s);
	}
	else if (v->type == jbvString)
	{
		s = v->val.string.val;
		end = s + v->val.string.len;
		*quoted = true;
	}
	else
		return PRIORITY_WRONG_TYPE;

	p = s;
	while (p < end && isspace((unsigned char) *p))
		p++;
	while (end > p && isspace((unsigned char) end[-1]))
		end--;
	start = p;
	if (p < end && (*p == '+' || *p == '-'))
		negative = *p++ == '-';
	for (; p < end && isdigit((unsigned char) *p); p++, digits++)
		n = Min(n * 10 + (*p - '0'), 1000);
	if (p < end && *p == '.')
	{
		for (p++; p < end && isdigit((unsigned char) *p); p++, digits++)
			if (*p != '0')
				integral = false;
	}
	if (digits == 0 || p != end)
	{
		/* the whole value as written, blanks included */
		*text = *quoted ? pnstrdup(v->val.string.val, v->val.string.len) : pstrdup(s);
		return PRIORITY_NOT_NUMBER;
	}
	*text = pnstrdup(start, end - start);
	if (!integral)
		return PRIORITY_NOT_INTEGER;
	if (negative || n < 1 || n > 5)
		return PRIORITY_OUT_OF_RANGE;
	*value = (int16) n;
	return PRIORITY_OK;
}
