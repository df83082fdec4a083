/* table.h - aligned text tables for the CLI's human-readable output. */
#ifndef SK_CLI_TABLE_H
#define SK_CLI_TABLE_H

#include <stddef.h>
#include <stdio.h>

struct sk_table {
    size_t ncols;
    size_t nrows, cap;
    char **cells; /* nrows * ncols, row-major; row 0 is the header */
};

/* sk_table_init - a table with these column headers (ncols of them). */
void sk_table_init(struct sk_table *t, size_t ncols, const char *const *headers);
/* sk_table_add - append a row of ncols cells (copied; NULL prints "-"). */
void sk_table_add(struct sk_table *t, const char *const *cells);
/* sk_table_print - columns padded to their widest cell, two spaces apart;
 * the last column is not padded. */
void sk_table_print(const struct sk_table *t, FILE *out);
void sk_table_release(struct sk_table *t);

#endif
