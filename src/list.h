/* list.h - the one intrusive doubly linked list, and a FIFO on it.
 *
 * An element embeds a link (LIST_LINK) per list it can be on; a list is a
 * pointer to its first element, NULL-terminated at both ends; a FIFO keeps
 * the tail too. Macros, so one implementation serves spans, segments and
 * huge mappings with their own types; their arguments are evaluated more
 * than once, so callers pass plain variables.
 *
 * Invariant: for an element e on a list of head h, through link f:
 *   e->f.prev == NULL exactly when h == e, and e->f.next->f.prev == e.
 */
#ifndef STRATA_LIST_H
#define STRATA_LIST_H

#include <stddef.h>

#define LIST_LINK(type) struct { type *next, *prev; }

/* Put e first on *head. */
#define LIST_PUSH(head, e, f) do {                                       \
    (e)->f.prev = NULL;                                                  \
    (e)->f.next = *(head);                                               \
    if (*(head)) (*(head))->f.prev = (e);                                \
    *(head) = (e);                                                       \
  } while (0)

/* Put e second on *head (first when the list is empty). */
#define LIST_INSERT_SECOND(head, e, f) do {                              \
    if (!*(head)) { LIST_PUSH(head, e, f); break; }                      \
    (e)->f.prev = *(head);                                               \
    (e)->f.next = (*(head))->f.next;                                     \
    if ((e)->f.next) (e)->f.next->f.prev = (e);                          \
    (*(head))->f.next = (e);                                             \
  } while (0)

/* Take e off *head. */
#define LIST_REMOVE(head, e, f) do {                                     \
    if ((e)->f.prev) (e)->f.prev->f.next = (e)->f.next;                  \
    else *(head) = (e)->f.next;                                          \
    if ((e)->f.next) (e)->f.next->f.prev = (e)->f.prev;                  \
    (e)->f.next = (e)->f.prev = NULL;                                    \
  } while (0)

/* A FIFO: the list from head, with its last element. */
#define FIFO(type) struct { type *head, *tail; }

/* Put e last. */
#define FIFO_PUSH(q, e, f) do {                                          \
    (e)->f.next = NULL;                                                  \
    (e)->f.prev = (q)->tail;                                             \
    if ((q)->tail) (q)->tail->f.next = (e);                              \
    else (q)->head = (e);                                                \
    (q)->tail = (e);                                                     \
  } while (0)

/* Take e off the FIFO, wherever it is. */
#define FIFO_REMOVE(q, e, f) do {                                        \
    if ((e)->f.prev) (e)->f.prev->f.next = (e)->f.next;                  \
    else (q)->head = (e)->f.next;                                        \
    if ((e)->f.next) (e)->f.next->f.prev = (e)->f.prev;                  \
    else (q)->tail = (e)->f.prev;                                        \
  } while (0)

#endif
