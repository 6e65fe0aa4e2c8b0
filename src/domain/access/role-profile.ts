import { z } from 'zod';
import { isCalendarDate } from '../dates.ts';
import { optionalText, text } from '../text.ts';

export const roleProfileStatuses = ['active', 'ended'] as const;
export type RoleProfileStatus = (typeof roleProfileStatuses)[number];

export interface Position {
  positionId: string;
  odsCode: string;
  name: string;
  assignable: boolean;
  jobRoles: string[];
  activities: string[];
  areasOfWork: string[];
  workgroups: string[];
  status: 'active' | 'retired';
}

export interface RoleProfile {
  personRoleId: string;
  userId: string;
  personOrgId: string;
  positionId: string;
  odsCode: string;
  startDate: string;
  endDate: string | null;
  status: RoleProfileStatus;
}

/**
 * A role profile is effective on a day when it is active and the day lies between its start and end dates, both
 * inclusive. The check takes the day as an argument, so an end date takes effect at midnight without any job running.
 */
export function isEffectiveOn(profile: Pick<RoleProfile, 'status' | 'startDate' | 'endDate'>, day: string): boolean {
  if (profile.status !== 'active') return false;
  if (profile.startDate > day) return false;
  return profile.endDate == null || profile.endDate >= day;
}

const calendarDate = z.string().trim().refine(isCalendarDate, { message: 'must be a real date written YYYY-MM-DD' });
const workgroupCode = z.string().regex(/^[0-9]{12}$/, 'workgroup codes are 12 digits');

export const newPositionSchema = z.object({
  name: text(200),
  assignable: z.boolean().default(false),
  jobRoles: z
    .array(z.string().regex(/^R[0-9]{4}$/, 'job role codes are R followed by 4 digits'))
    .min(1)
    .max(50),
  activities: z
    .array(z.string().regex(/^B[0-9]{4}$/, 'activity codes are B followed by 4 digits'))
    .max(500)
    .default([]),
  areasOfWork: z
    .array(z.string().regex(/^T[0-9]{4}$/, 'area of work codes are T followed by 4 digits'))
    .max(100)
    .default([]),
  workgroups: z.array(workgroupCode).max(100).default([]),
});
export type NewPosition = z.output<typeof newPositionSchema>;

export const newWorkgroupSchema = z.object({ name: text(200), description: optionalText(500) });

export const newRoleProfileSchema = z
  .object({
    userId: z.string(),
    positionId: z.string().regex(/^[0-9]{1,18}$/, 'must be a position ID'),
    startDate: calendarDate,
    endDate: calendarDate.nullable().default(null),
  })
  .refine((v) => v.endDate == null || v.endDate >= v.startDate, {
    message: 'the end date must be on or after the start date',
    path: ['endDate'],
  });
export type NewRoleProfile = z.output<typeof newRoleProfileSchema>;
