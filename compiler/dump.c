/* dump.c — text and Graphviz dumps of a graph (declared in graph.h). */
#include "graph.h"
#include <string.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wswitch-enum"   /* only ops with attributes print something */
static void attrs(const Node *n, FILE *out) {
    switch (n->op) {
    case OP_CONST: fprintf(out, " value=%g", n->f[0]); break;
    case OP_SUM: case OP_AMAX: case OP_CONCAT: fprintf(out, " axis=%lld", (long long)n->i[0]); break;
    case OP_SLICE: case OP_PAD: fprintf(out, " axis=%lld start=%lld", (long long)n->i[0], (long long)n->i[1]); break;
    case OP_PERMUTE:
        fprintf(out, " perm=(");
        for (int k = 0; k < n->shape.ndim; k++) fprintf(out, k ? ",%lld" : "%lld", (long long)n->i[k]);
        fprintf(out, ")");
        break;
    case OP_GATHER: case OP_SCATTER_ADD:
        fprintf(out, " axis=%lld index=(", (long long)n->i[0]);
        for (int64_t k = 0; k < n->ndata && k < 6; k++) fprintf(out, k ? ",%d" : "%d", n->idata[k]);
        fprintf(out, n->ndata > 6 ? ",...)" : ")");
        break;
    case OP_GATHER_DYN: case OP_SCATTER_ADD_DYN: fprintf(out, " axis=%lld", (long long)n->i[0]); break;
    case OP_MATMUL: if (n->i[0] || n->i[1]) fprintf(out, " trans=%s%s", n->i[0] ? "A" : "", n->i[1] ? "B" : ""); break;
    case OP_EXTRACT: fprintf(out, " offset=%lld", (long long)n->i[0]); break;
    case OP_DROP_MASK: fprintf(out, " p=%g", n->f[0]); break;
    case OP_RANDPERM: fprintf(out, " n=%lld", (long long)n->i[0]); break;
    case OP_PARAM:
        fprintf(out, " init=%s%s%s%s", init_name(n->param->init), n->param->tags & TAG_FROZEN ? " frozen" : "",
                n->param->tags & TAG_BUFFER ? " buffer" : "", n->param->tags & TAG_NODECAY ? " nodecay" : "");
        break;
    default: break;
    }
}
#pragma GCC diagnostic pop

static void loc_suffix(const Node *n, FILE *out) {
    if (!n->loc.file) return;
    int line, col;
    source_linecol(n->loc.file, n->loc.start, &line, &col);
    const char *base = strrchr(n->loc.file->path, '/');
    fprintf(out, "  @%s:%d:%d", base ? base + 1 : n->loc.file->path, line, col);
}

void graph_dump_text(const Graph *g, FILE *out) {
    char sb[96];
    fprintf(out, "graph: %d nodes, %d params (%lld values, %lld trainable), %d inputs\n", g->nnodes, g->params.n,
            (long long)graph_param_count(g, false), (long long)graph_param_count(g, true), g->inputs.n);
    for (int k = 0; k < g->nnodes; k++) {
        const Node *n = g->nodes[k];
        fprintf(out, "%%%-5u = %-12s %s%s", n->id, op_name(n->op), dtype_name(n->dtype), shape_str(n->shape, sb, 96));
        for (int j = 0; j < n->nsrc; j++) fprintf(out, "%s%%%u", j ? ", " : " (", n->src[j]->id);
        if (n->nsrc) fprintf(out, ")");
        if (n->name) fprintf(out, " \"%s\"", n->name);
        attrs(n, out);
        for (int j = 0; j < g->nnamed; j++)
            if (g->named[j].node == n) fprintf(out, " %s=%s", n->flags & NF_OUTPUT ? "output" : "tap", g->named[j].name);
        if (n == g->loss) fprintf(out, " LOSS");
        loc_suffix(n, out);
        fputc('\n', out);
    }
}

void graph_dump_dot(const Graph *g, FILE *out) {
    char sb[96];
    fprintf(out, "digraph vmc {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n");
    for (int k = 0; k < g->nnodes; k++) {
        const Node *n = g->nodes[k];
        const char *color = n->op == OP_PARAM ? "lightblue" : n->op == OP_INPUT ? "palegreen"
                          : op_class(n->op) == K_GEMM || op_class(n->op) == K_OPAQUE ? "orange" : "white";
        fprintf(out, "  n%u [label=\"%%%u %s\\n%s%s%s%s\", style=filled, fillcolor=%s];\n", n->id, n->id, op_name(n->op),
                dtype_name(n->dtype), shape_str(n->shape, sb, 96), n->name ? "\\n" : "", n->name ? n->name : "", color);
        for (int j = 0; j < n->nsrc; j++) fprintf(out, "  n%u -> n%u;\n", n->src[j]->id, n->id);
    }
    fprintf(out, "}\n");
}
