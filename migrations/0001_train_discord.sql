ALTER TABLE "guild_settings" ADD COLUMN "trainer_role_id" text;--> statement-breakpoint
ALTER TABLE "trainings" ADD COLUMN "status_message_id" text;--> statement-breakpoint
ALTER TABLE "trainings" ADD COLUMN "loss_history" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "trainings" ADD COLUMN "chart_checkpoints" integer DEFAULT 0 NOT NULL;