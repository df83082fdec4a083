/* table.c - aligned text tables for the CLI's human-readable output. */
#include "table.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

void sk_table_init(struct sk_table *t, size_t ncols, const char *const *headers)
{
    memset(t, 0, sizeof(*t));
    t->ncols = ncols;
    sk_table_add(t, headers);
}

void sk_table_add(struct sk_table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = xrealloc(t->cells, t->cap * t->ncols * sizeof(char *));
    }
    for (size_t i = 0; i < t->ncols; i++) {
        const char *s = cells[i] != NULL && cells[i][0] != '\0' ? cells[i] : "-";
        /* one line per row: a control character would break the layout */
        char *copy = xstrdup(s);
        for (char *p = copy; *p; p++)
            if ((unsigned char)*p < ' ' || *p == 0x7f)
                *p = '?';
        t->cells[t->nrows * t->ncols + i] = copy;
    }
    t->nrows++;
}

/* display_width - characters, counting a UTF-8 sequence once. */
static size_t display_width(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

void sk_table_print(const struct sk_table *t, FILE *out)
{
    size_t *width = xcalloc(t->ncols, sizeof(size_t));
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t w = display_width(t->cells[r * t->ncols + c]);
            if (w > width[c])
                width[c] = w;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            fputs(s, out);
            if (c + 1 < t->ncols)
                fprintf(out, "%*s", (int)(width[c] - display_width(s) + 2), "");
        }
        fputc('\n', out);
    }
    free(width);
}

void sk_table_release(struct sk_table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}
