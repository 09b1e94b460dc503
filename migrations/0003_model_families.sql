ALTER TYPE "public"."model_family" ADD VALUE 'flux-schnell';--> statement-breakpoint
ALTER TYPE "public"."model_family" ADD VALUE 'flux2';--> statement-breakpoint
ALTER TYPE "public"."model_family" ADD VALUE 'sdxl';--> statement-breakpoint
ALTER TYPE "public"."model_family" ADD VALUE 'pony';--> statement-breakpoint
ALTER TYPE "public"."model_family" ADD VALUE 'playground';--> statement-breakpoint
ALTER TYPE "public"."model_family" ADD VALUE 'sd35-large';--> statement-breakpoint
ALTER TYPE "public"."model_family" ADD VALUE 'sd35-medium';--> statement-breakpoint
ALTER TYPE "public"."model_family" ADD VALUE 'ponyv7';