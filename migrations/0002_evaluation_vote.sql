ALTER TABLE "guild_settings" ADD COLUMN "vote_minutes" integer DEFAULT 1440 NOT NULL;--> statement-breakpoint
ALTER TABLE "guild_settings" ADD COLUMN "blind_votes" boolean DEFAULT true NOT NULL;--> statement-breakpoint
ALTER TABLE "styles" ADD COLUMN "default_strength" real DEFAULT 0.8 NOT NULL;--> statement-breakpoint
ALTER TABLE "trainings" ADD COLUMN "evaluation" jsonb;--> statement-breakpoint
ALTER TABLE "trainings" ADD COLUMN "evaluation_message_ids" jsonb DEFAULT '{}'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "trainings" ADD COLUMN "vote_message_id" text;