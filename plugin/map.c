/*
 * Open-addressing hash map with linear probing. Records carry their own keys,
 * so a lookup needs no allocation and a table entry is 16 bytes. The table
 * grows at 50% load (live plus deleted slots) and rebuilds without the
 * deleted slots.
 */
#include <stdlib.h>
#include <string.h>

#include "fa_plugin.h"

#define FA_MAP_EMPTY 0
#define FA_MAP_DELETED 1
#define FA_MAP_MIN_CAPACITY 16

void fa_map_init(struct fa_map *map, size_t key_offset)
{
	memset(map, 0, sizeof(*map));
	map->key_offset = key_offset;
}

static void note_change(struct fa_map *map)
{
	if (map->generation != NULL)
		(*map->generation)++;
}

/* Mixes one 8-byte word into the running hash. */
static uint64_t mix_word(uint64_t hash, uint64_t word)
{
	hash ^= word;
	hash *= 0x9e3779b97f4a7c15ULL;
	return hash ^ (hash >> 29);
}

/*
 * Hashes the key 8 bytes at a time (the last word zero-padded, the length
 * folded into the seed), then applies the 64-bit finalizer of MurmurHash3.
 * Keys are short ids, so a word at a time takes several times fewer steps
 * than a byte at a time. 0 and 1 are reserved for empty and deleted slots.
 */
uint64_t fa_map_hash(const char *key, size_t len)
{
	uint64_t hash = 0xcbf29ce484222325ULL ^ len;
	uint64_t word;

	for (; len >= sizeof(word); key += sizeof(word), len -= sizeof(word)) {
		memcpy(&word, key, sizeof(word));
		hash = mix_word(hash, word);
	}
	if (len > 0) {
		word = 0;
		memcpy(&word, key, len);
		hash = mix_word(hash, word);
	}
	hash ^= hash >> 33;
	hash *= 0xff51afd7ed558ccdULL;
	hash ^= hash >> 33;
	hash *= 0xc4ceb9fe1a85ec53ULL;
	hash ^= hash >> 33;
	if (hash < 2)
		hash += 2;
	return hash;
}

static const char *record_key(const struct fa_map *map, const void *record)
{
	return (const char *)record + map->key_offset;
}

static bool key_equal(const struct fa_map *map, const void *record,
                      const char *key, size_t len)
{
	const char *stored = record_key(map, record);

	return strncmp(stored, key, len) == 0 && stored[len] == '\0';
}

void *fa_map_get(const struct fa_map *map, const char *key, size_t len)
{
	if (map->capacity == 0)
		return NULL;

	uint64_t hash = fa_map_hash(key, len);
	size_t mask = map->capacity - 1;

	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		const struct fa_map_slot *slot = &map->slots[i];

		if (slot->hash == FA_MAP_EMPTY)
			return NULL;
		if (slot->hash == hash &&
		    key_equal(map, slot->record, key, len))
			return slot->record;
	}
}

/* Inserts into a table known to have room and not to contain the key. */
static void insert_fresh(struct fa_map_slot *slots, size_t capacity,
                         uint64_t hash, void *record)
{
	size_t mask = capacity - 1;
	size_t i = hash & mask;

	while (slots[i].hash >= 2)
		i = (i + 1) & mask;
	slots[i].hash = hash;
	slots[i].record = record;
}

static fa_result resize(struct fa_map *map, size_t capacity)
{
	struct fa_map_slot *slots = calloc(capacity, sizeof(*slots));

	if (slots == NULL)
		return FA_ERR_NOMEM;
	for (size_t i = 0; i < map->capacity; i++) {
		if (map->slots[i].hash >= 2)
			insert_fresh(slots, capacity, map->slots[i].hash,
			             map->slots[i].record);
	}
	free(map->slots);
	map->slots = slots;
	map->capacity = capacity;
	map->used = map->count;
	return FA_OK;
}

/*
 * Inserts record, replacing a record with the same key. *replaced receives
 * the old record (or NULL) and the caller frees it. The map never owns
 * records.
 */
fa_result fa_map_put(struct fa_map *map, void *record, void **replaced)
{
	const char *key = record_key(map, record);
	size_t len = strlen(key);
	uint64_t hash = fa_map_hash(key, len);
	fa_result result;

	*replaced = NULL;
	note_change(map);
	if ((map->used + 1) * 2 > map->capacity) {
		size_t capacity = map->capacity ? map->capacity : 8;

		while ((map->count + 1) * 2 > capacity ||
		       capacity < FA_MAP_MIN_CAPACITY)
			capacity *= 2;
		result = resize(map, capacity);
		if (result != FA_OK)
			return result;
	}

	size_t mask = map->capacity - 1;
	struct fa_map_slot *free_slot = NULL;

	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		struct fa_map_slot *slot = &map->slots[i];

		if (slot->hash == FA_MAP_EMPTY) {
			if (free_slot == NULL) {
				free_slot = slot;
				map->used++;
			}
			break;
		}
		if (slot->hash == FA_MAP_DELETED) {
			if (free_slot == NULL)
				free_slot = slot;
			continue;
		}
		if (slot->hash == hash &&
		    key_equal(map, slot->record, key, len)) {
			*replaced = slot->record;
			slot->record = record;
			return FA_OK;
		}
	}
	free_slot->hash = hash;
	free_slot->record = record;
	map->count++;
	return FA_OK;
}

/* Unlinks and returns the record with this key, or NULL. */
void *fa_map_remove(struct fa_map *map, const char *key, size_t len)
{
	if (map->capacity == 0)
		return NULL;

	uint64_t hash = fa_map_hash(key, len);
	size_t mask = map->capacity - 1;

	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		struct fa_map_slot *slot = &map->slots[i];

		if (slot->hash == FA_MAP_EMPTY)
			return NULL;
		if (slot->hash == hash &&
		    key_equal(map, slot->record, key, len)) {
			void *record = slot->record;

			note_change(map);
			slot->hash = FA_MAP_DELETED;
			slot->record = NULL;
			map->count--;
			return record;
		}
	}
}

void fa_map_free_all(struct fa_map *map)
{
	for (size_t i = 0; i < map->capacity; i++) {
		if (map->slots[i].hash >= 2)
			free(map->slots[i].record);
	}
	fa_map_release(map);
}

void fa_map_release(struct fa_map *map)
{
	free(map->slots);
	map->slots = NULL;
	map->capacity = 0;
	map->count = 0;
	map->used = 0;
}
