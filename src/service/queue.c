/* SPDX-License-Identifier: MIT */
/*
 * queue: what both backends share (queue.h describes the interface).
 */
#include "queue.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void queue_item_done(struct queue_item *it) {
        if (!it)
                return;
        free(it->task);
        it->task = NULL;
}

void queue_status_done(struct queue_status *s) {
        if (!s)
                return;
        free(s->result);
        s->result = NULL;
}

void queue_outbox_free(char **ids, char **texts, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(ids ? ids[i] : NULL);
                free(texts ? texts[i] : NULL);
        }
        free(ids);
        free(texts);
}

static const char *const queue_state_table[] = {
        [QUEUE_QUEUED] = "queued",
        [QUEUE_RUNNING] = "running",
        [QUEUE_DONE] = "done",
};

const char *queue_state_to_string(enum queue_state s) {
        if ((size_t)s >= ELEMENTSOF(queue_state_table))
                return NULL;
        return queue_state_table[s];
}

bool queue_id_is_valid(const char *id) {
        if (!id || strlen(id) != QUEUE_ID_LEN)
                return false;
        for (size_t i = 0; i < QUEUE_ID_LEN; i++)
                if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
                        return false;
        return true;
}

bool queue_consumer_is_valid(const char *consumer) {
        if (!consumer)
                return false;
        size_t n = strlen(consumer);
        if (n == 0 || n > QUEUE_CONSUMER_MAX)
                return false;
        /* It becomes a Redis consumer's name and a log field: no spaces,
         * no control characters, nothing to quote. */
        return strspn(consumer, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") == n;
}
