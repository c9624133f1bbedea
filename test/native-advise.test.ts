import test from 'ava';
import * as native from '../native/index.js';

/**
 * madvise on the two kinds of memory a slab lives in (issue 23's warm pages): what each advice
 * does to the bytes, read back through the real mappings.
 */

const PAGES = 4;

function shared(t: { teardown(fn: () => void): void }, size: number): number {
  const name = `/jitmem_advise_${process.pid}_${Math.random().toString(16).slice(2, 10)}`;
  const fd = native.shmCreate(name, size);
  native.shmUnlink(name);
  const address = native.mapShared(fd, size);
  native.closeFd(fd);
  t.teardown(() => native.unmap(address, size));
  return address;
}

function bytesAt(address: number, length: number): number[] {
  const out = new Uint8Array(length);
  native.copyOut(address, out);
  return [...out];
}

test('shared memory: DONTNEED keeps the bytes in the object, REMOVE frees them to zeros, FREE is refused (EINVAL)', (t) => {
  const size = PAGES * native.pageSize();
  const address = shared(t, size);
  native.fill(address, size, 0xab);
  native.advise(address, size, native.MADV.DONTNEED);
  t.deepEqual(bytesAt(address, 8), Array(8).fill(0xab), 'DONTNEED drops the mapping only; the object keeps the page');
  native.advise(address, size, native.MADV.REMOVE);
  t.deepEqual(bytesAt(address, 8), Array(8).fill(0));
  t.throws(() => native.advise(address, size, native.MADV.FREE), { code: 'EINVAL' });
});

test('private anonymous memory: DONTNEED reads back zeros; FREE is taken', (t) => {
  const size = PAGES * native.pageSize();
  const address = native.reserve(size, native.PROT_RW);
  t.teardown(() => native.unmap(address, size));
  native.fill(address, size, 0x5a);
  native.advise(address, size, native.MADV.FREE);
  native.advise(address, size, native.MADV.DONTNEED);
  t.deepEqual(bytesAt(address + size - 8, 8), Array(8).fill(0));
});

test('advise refuses an advice it does not know and an unaligned address, by code', (t) => {
  const size = native.pageSize();
  const address = native.reserve(size, native.PROT_RW);
  t.teardown(() => native.unmap(address, size));
  t.throws(() => native.advise(address, size, 3 as native.Advice), { code: 'ERR_INVALID_ARGUMENT', message: /advice 3/ });
  t.throws(() => native.advise(address + 8, 8, native.MADV.DONTNEED), { code: 'ERR_UNALIGNED_ADDRESS' });
});
