import type { LinkPlan } from '../link-plan.js';
import { STUB_ALIGNMENT, stubSectionContent } from '../x86-64/stubs.js';
import { addSection, type SectionGroups } from './plan-sections.js';

export const GOT_ENTRY_SIZE = 8;

/**
 * Pass 5, build entries: the GOT (one 8-byte entry per target the scan asked for; one entry at
 * least when code refers to _GLOBAL_OFFSET_TABLE_ itself), the TLS GOT, and the PLT stubs of
 * calls that leave the graph. Both are filled by relocate() once addresses are known.
 */
export function buildEntries(plan: LinkPlan, groups: SectionGroups, needGot: boolean): void {
  if (plan.gotTargets.length > 0 || needGot) {
    const size = Math.max(GOT_ENTRY_SIZE, plan.gotTargets.length * GOT_ENTRY_SIZE);
    plan.gotSection = addSection(plan, '$__GOT', groups[0]!, GOT_ENTRY_SIZE, size, new Uint8Array(size));
  }
  if (plan.tls.words > 0) {
    // The TLS GOT: GD and LD pairs (module, offset) and IE entries (offset from the thread
    // pointer), written by relocate() from the TLS binding.
    const size = plan.tls.words * GOT_ENTRY_SIZE;
    plan.tls.gotSection = addSection(plan, '$__TLS_GOT', groups[0]!, 2 * GOT_ENTRY_SIZE, size, new Uint8Array(size));
  }
  if (plan.stubTargets.length > 0) {
    const content = stubSectionContent(plan.stubTargets.length);
    plan.stubSection = addSection(plan, '$__STUBS', groups[2]!, STUB_ALIGNMENT, content.length, content);
  }
}
